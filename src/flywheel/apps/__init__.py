"""Apps: compositions of layer-2 capabilities behind `App.run(input, tenant) -> Answer`."""

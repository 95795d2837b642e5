"""Watching production (layer 3): metrics per time window and alerts (`windows`, `alerts`), online evaluators on
sampled traces (`online`), drift and dev–prod skew (`drift`, `clusters`). Importing the package stays light;
import the submodule you need, e.g. `from flywheel.monitor.windows import compute`."""

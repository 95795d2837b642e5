// The Vercel AI SDK against `flywheel serve` (tests/test_server_clients_frameworks.py runs it with node when the
// SDK is installed: FLYWHEEL_AI_SDK_DIR names a folder where `npm install ai @ai-sdk/openai zod` was run).
// argv: the server's root URL. Prints one JSON object: each case's result, or its error message.
import { createRequire } from "node:module";
import path from "node:path";

const require = createRequire(path.join(process.env.FLYWHEEL_AI_SDK_DIR, "package.json"));
const { generateText, streamText, tool, stepCountIs, embed } = require("ai");
const { createOpenAI } = require("@ai-sdk/openai");
const { z } = require("zod");

const openai = createOpenAI({ baseURL: process.argv[2] + "/v1", apiKey: "unused" });
const weather = tool({
  description: "Current weather in a city",
  inputSchema: z.object({ city: z.string() }),
  execute: async ({ city }) => ({ city, temp: 21 }),
});
const ask = "What is the weather in Paris?";
const cases = {};
const models = { responses: (m) => openai(m), chat: (m) => openai.chat(m) };

for (const [wire, model] of Object.entries(models)) {
  for (const alias of ["strong", "claude"]) {
    const m = model(alias);
    const key = `${wire}/${alias}`;
    const run = async (name, fn) => {
      try {
        cases[`${key}/${name}`] = await fn();
      } catch (err) {
        cases[`${key}/${name}`] = { error: String(err?.message ?? err) };
      }
    };
    await run("generate", async () => {
      const r = await generateText({ model: m, prompt: "hello there" });
      return { text: r.text, finishReason: r.finishReason, inputTokens: r.usage.inputTokens };
    });
    await run("stream", async () => {
      const r = streamText({ model: m, prompt: "stream me" });
      let text = "";
      for await (const part of r.textStream) text += part;
      return { text, finishReason: await r.finishReason, outputTokens: (await r.usage).outputTokens };
    });
    await run("tools", async () => {
      const r = await generateText({ model: m, prompt: ask, tools: { get_weather: weather }, stopWhen: stepCountIs(3) });
      return { text: r.text, steps: r.steps.length, calls: r.steps[0].toolCalls.map((c) => [c.toolName, c.input]) };
    });
    await run("tools_stream", async () => {
      const r = streamText({ model: m, prompt: ask, tools: { get_weather: weather }, stopWhen: stepCountIs(3) });
      let text = "";
      for await (const part of r.textStream) text += part;
      return { text, steps: (await r.steps).length };
    });
  }
}
try {
  const e = await embed({ model: openai.embedding("emb"), value: "hello" });
  cases["embed"] = { length: e.embedding.length };
} catch (err) {
  cases["embed"] = { error: String(err?.message ?? err) };
}
console.log(JSON.stringify(cases));

/**
 * The exact request the playground sends, as code to paste elsewhere. The key is never written
 * into it: the snippets read it from an environment variable.
 */

const KEY_VARIABLE = "SWITCHBOARD_API_KEY";

const shellQuote = (text: string) => `'${text.replaceAll("'", `'\\''`)}'`;

export function curlCommand(origin: string, path: string, body: unknown): string {
  return [
    `curl ${shellQuote(`${origin}${path}`)} \\`,
    `  -H "Authorization: Bearer $${KEY_VARIABLE}" \\`,
    `  -H "Content-Type: application/json" \\`,
    ...(isStreaming(body) ? ["  --no-buffer \\"] : []),
    `  -d ${shellQuote(JSON.stringify(body, null, 2))}`,
  ].join("\n");
}

export function sdkCode(origin: string, body: unknown): string {
  const request = JSON.stringify(body, null, 2);
  const lines = [
    `import OpenAI from "openai";`,
    "",
    `const client = new OpenAI({ baseURL: ${JSON.stringify(`${origin}/v1`)}, apiKey: process.env.${KEY_VARIABLE} });`,
    "",
  ];
  if (isStreaming(body)) {
    lines.push(
      `const stream = await client.chat.completions.create(${request});`,
      "for await (const chunk of stream) {",
      "  const delta = chunk.choices[0]?.delta;",
      `  process.stdout.write(delta?.content ?? "");`,
      // Tool calls stream in pieces: the first names the function, the rest add argument text.
      ...(hasTools(body)
        ? [
            "  for (const call of delta?.tool_calls ?? []) {",
            `    if (call.function?.name) process.stdout.write(\`\\n\${call.function.name}: \`);`,
            `    process.stdout.write(call.function?.arguments ?? "");`,
            "  }",
          ]
        : []),
      '  if (chunk.usage) console.log("\\n", chunk.usage);',
      "}",
    );
  } else {
    lines.push(
      `const completion = await client.chat.completions.create(${request});`,
      "console.log(completion.choices[0]?.message, completion.usage);",
    );
  }
  return lines.join("\n");
}

function isStreaming(body: unknown): boolean {
  return typeof body === "object" && body !== null && (body as { stream?: unknown }).stream === true;
}

function hasTools(body: unknown): boolean {
  return typeof body === "object" && body !== null && Array.isArray((body as { tools?: unknown }).tools);
}

/**
 * Chat templates in the shape of the tool-calling families real GGUF files carry, written for the
 * tests: what matters is how each renders tools, assistant tool calls and tool results, and the
 * call format it teaches the model. The generated test models embed them (makeModel's
 * chatTemplate), so the server reads them from the GGUF as it would a real model's.
 */

/** Hermes / Qwen 2.5 style: tools in the system turn, calls in <tool_call> tags, results as user turns. */
export const HERMES_TEMPLATE = `{%- if tools %}<|im_start|>system
{% if messages[0].role == 'system' %}{{ messages[0].content }}{% else %}You are a helpful assistant.{% endif %}

# Tools

Call functions when they help. Their signatures, one per line:
<tools>
{%- for tool in tools %}
{{ tool | tojson }}
{%- endfor %}
</tools>

Write each call as JSON inside tags:
<tool_call>
{"name": <function-name>, "arguments": <args-json-object>}
</tool_call><|im_end|>
{%- elif messages[0].role == 'system' %}<|im_start|>system
{{ messages[0].content }}<|im_end|>
{%- endif %}
{%- for message in messages %}
{%- if message.role == 'system' and loop.first %}
{%- elif message.role == 'assistant' and message.tool_calls %}
<|im_start|>assistant
{%- if message.content %}
{{ message.content }}
{%- endif %}
{%- for tool_call in message.tool_calls %}
<tool_call>
{"name": "{{ tool_call.function.name }}", "arguments": {{ tool_call.function.arguments | tojson }}}
</tool_call>
{%- endfor %}<|im_end|>
{%- elif message.role == 'tool' %}
{%- if loop.first or messages[loop.index0 - 1].role != 'tool' %}
<|im_start|>user
{%- endif %}
<tool_response>
{{ message.content }}
</tool_response>
{%- if loop.last or messages[loop.index0 + 1].role != 'tool' %}<|im_end|>{% endif %}
{%- else %}
<|im_start|>{{ message.role }}
{{ message.content }}<|im_end|>
{%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
<|im_start|>assistant
{% endif %}`;

/** Llama 3.1 style: JSON calls with "parameters", results in the ipython role. */
export const LLAMA3_TEMPLATE = `{{- bos_token }}
{%- if messages[0].role == 'system' %}
{%- set system_message = messages[0].content %}
{%- set loop_messages = messages[1:] %}
{%- else %}
{%- set system_message = "" %}
{%- set loop_messages = messages %}
{%- endif %}
<|start_header_id|>system<|end_header_id|>

{% if tools %}Environment: ipython
{% endif %}{{ system_message }}<|eot_id|>
{%- for message in loop_messages %}
{%- if message.role == 'user' and loop.first and tools %}<|start_header_id|>user<|end_header_id|>

Answer with a JSON function call when one of these functions helps, as {"name": function name, "parameters": dictionary of arguments}.
{%- for tool in tools %}
{{ tool | tojson }}
{%- endfor %}

{{ message.content }}<|eot_id|>
{%- elif message.role == 'assistant' and message.tool_calls %}<|start_header_id|>assistant<|end_header_id|>

{% for tool_call in message.tool_calls %}{"name": "{{ tool_call.function.name }}", "parameters": {{ tool_call.function.arguments | tojson }}}{% endfor %}<|eot_id|>
{%- elif message.role == 'tool' or message.role == 'ipython' %}<|start_header_id|>ipython<|end_header_id|>

{{ message.content }}<|eot_id|>
{%- else %}<|start_header_id|>{{ message.role }}<|end_header_id|>

{{ message.content }}<|eot_id|>
{%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>

{% endif %}`;

/** Mistral v0.3 style: tools before the last user turn, calls after [TOOL_CALLS], 9-character ids. */
export const MISTRAL_TEMPLATE = `{%- if messages[0].role == 'system' %}
{%- set system_message = messages[0].content %}
{%- set loop_messages = messages[1:] %}
{%- else %}
{%- set loop_messages = messages %}
{%- endif %}
{{- bos_token }}
{%- for message in loop_messages %}
{%- if message.role == 'user' %}
{%- if tools and loop.last %}[AVAILABLE_TOOLS] [{% for tool in tools %}{{ tool | tojson }}{% if not loop.last %}, {% endif %}{% endfor %}][/AVAILABLE_TOOLS]{% endif %}
{%- if loop.last and system_message is defined %}[INST] {{ system_message }}

{{ message.content }}[/INST]{% else %}[INST] {{ message.content }}[/INST]{% endif %}
{%- elif message.role == 'assistant' and message.tool_calls %}[TOOL_CALLS] [
{%- for tool_call in message.tool_calls %}
{%- if tool_call.id is not defined or tool_call.id | length != 9 %}{{ raise_exception("Tool call ids must be 9 alphanumeric characters") }}{% endif %}
{"name": "{{ tool_call.function.name }}", "arguments": {{ tool_call.function.arguments | tojson }}, "id": "{{ tool_call.id }}"}{% if not loop.last %}, {% endif %}
{%- endfor %}]{{ eos_token }}
{%- elif message.role == 'assistant' %} {{ message.content }}{{ eos_token }}
{%- elif message.role == 'tool' %}[TOOL_RESULTS] {"content": {{ message.content | tojson }}, "call_id": "{{ message.tool_call_id }}"}[/TOOL_RESULTS]
{%- endif %}
{%- endfor %}`;

/** Qwen 3 style: Hermes tool calls, plus <think> reasoning switched by enable_thinking. */
export const REASONING_TEMPLATE = `${HERMES_TEMPLATE.replace(
  "{%- if add_generation_prompt %}\n<|im_start|>assistant\n{% endif %}",
  "{%- if add_generation_prompt %}\n<|im_start|>assistant\n{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n{% else %}<think>\n{% endif %}{% endif %}",
)}`;

// ChatML as Qwen3 and Nemotron-Cascade use it, rendered in C++ (no Jinja):
//
//   <|im_start|>system\n{system}\n\n# Tools ... <tools>\n{tool JSON}...</tools>...<|im_end|>\n
//   <|im_start|>user\n{content} /think<|im_end|>\n
//   <|im_start|>assistant\n<think>\n{reasoning}\n</think>\n\n{content}\n<tool_call>...</tool_call><|im_end|>\n
//   <|im_start|>user\n<tool_response>\n{result}\n</tool_response><|im_end|>\n
//   <|im_start|>assistant\n                       (generation prompt)
//
// The text is what Qwen3's own chat template (tokenizer_config.json) gives
// for the same conversation; the thinking mode is a per-turn flag on user
// turns ("/think" or "/no_think" appended), so it can change mid-conversation.
// As in Qwen3, think blocks are kept only for assistant turns after the last
// real user query; there, an assistant turn without reasoning that ends the
// conversation gets the empty block "<think>\n\n</think>\n\n" (what a model
// answering in no-think mode produces).
//
// Token ids and the assistant mask: the conversation is tokenized piece by
// piece: template text and contents as text, the ChatML markers
// (<|im_start|>, <|im_end|>) as their ids directly, so text inside a message
// can never produce a marker unless options.allow_special_in_content is
// set. An assistant turn's body (everything after "<|im_start|>assistant\n",
// including its <|im_end|>) is tokenized on its own, as the model generated
// it after the prompt; mask 1 marks exactly those tokens. The ids equal
// Encode(text) except where a body begins with whitespace that would join the
// newline before it.
//
// Thread-safe: free functions over immutable inputs.
#ifndef CASCADE_TOKENIZER_CHAT_TEMPLATE_H_
#define CASCADE_TOKENIZER_CHAT_TEMPLATE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "nlohmann/json.hpp"
#include "tokenizer/tokenizer.h"

namespace cascade::tokenizer {

// Keeps keys in the order given, as Python's json.dumps does for tools.
using OrderedJson = nlohmann::ordered_json;

enum class Role { kSystem, kUser, kAssistant, kTool };

// The mode switch appended to a user turn.
enum class ThinkingFlag { kNone, kThink, kNoThink };

struct ToolCall {
  std::string name;
  OrderedJson arguments = OrderedJson::object();
};

struct ChatMessage {
  Role role = Role::kUser;
  std::string content;
  // User turns: appended as " /think" or " /no_think".
  ThinkingFlag flag = ThinkingFlag::kNone;
  // Assistant turns: the text inside <think></think>. When unset and the
  // content holds "</think>", the reasoning is split out of the content.
  std::optional<std::string> reasoning;
  // Assistant turns: rendered after the content as <tool_call> blocks.
  std::vector<ToolCall> tool_calls;
};

struct ChatTemplateOptions {
  // Appends "<|im_start|>assistant\n" for the model to continue.
  bool add_generation_prompt = false;
  // With the generation prompt: also the empty think block, forcing no-think
  // mode (Qwen3's enable_thinking=false).
  bool prefill_empty_think = false;
  // Lets message text produce special tokens such as <|im_end|>; off, such
  // text is encoded as plain text.
  bool allow_special_in_content = false;
};

struct RenderedChat {
  std::string text;
  std::vector<int32_t> ids;
  // One entry per id: 1 for tokens of assistant turns (body and <|im_end|>).
  std::vector<uint8_t> assistant_mask;
};

// `tools`: function declarations as JSON objects, rendered one per line
// inside <tools></tools>. Errors: a tool that is not an object, a tool
// call without a name, a tokenizer without the ChatML tokens.
[[nodiscard]] absl::StatusOr<RenderedChat> RenderChat(const Tokenizer& tokenizer,
                                                      absl::Span<const ChatMessage> messages,
                                                      absl::Span<const OrderedJson> tools,
                                                      const ChatTemplateOptions& options);

// An assistant response taken apart.
struct ParsedResponse {
  std::string reasoning;  // inside <think></think>, newlines trimmed
  bool has_think_block = false;
  std::string content;    // the text outside the think block and tool calls
  std::vector<ToolCall> tool_calls;
};

// Parses generated text (e.g. Decode() of the sampled ids; a trailing
// <|im_end|> or <|endoftext|> is ignored). Each
// <tool_call> must hold a JSON object {"name": string, "arguments": object
// (or a string holding one)}; otherwise INVALID_ARGUMENT names the call
// ("tool call 2: ...") and what is wrong with it.
[[nodiscard]] absl::StatusOr<ParsedResponse> ParseAssistantResponse(absl::string_view text);

// JSON as Python's json.dumps(value, ensure_ascii=False) writes it (the
// template's `tojson`): ", " and ": " separators, keys in the given order.
std::string ToPythonJson(const OrderedJson& value);

}  // namespace cascade::tokenizer

#endif  // CASCADE_TOKENIZER_CHAT_TEMPLATE_H_

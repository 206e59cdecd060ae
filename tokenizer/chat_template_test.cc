#include "tokenizer/chat_template.h"

#include <catch2/catch.hpp>

#include "tokenizer/test_tokenizers.h"

namespace cascade::tokenizer {
namespace {

using testing::Qwen3;

ChatMessage System(std::string content) { return ChatMessage{Role::kSystem, std::move(content)}; }
ChatMessage User(std::string content, ThinkingFlag flag = ThinkingFlag::kNone) {
  ChatMessage m{Role::kUser, std::move(content)};
  m.flag = flag;
  return m;
}
ChatMessage Assistant(std::string content, std::optional<std::string> reasoning = std::nullopt) {
  ChatMessage m{Role::kAssistant, std::move(content)};
  m.reasoning = std::move(reasoning);
  return m;
}
ChatMessage Tool(std::string content) { return ChatMessage{Role::kTool, std::move(content)}; }

// The decoded text of each maximal run of mask-1 tokens.
std::vector<std::string> AssistantRuns(const Tokenizer& tokenizer, const RenderedChat& chat) {
  std::vector<std::string> runs;
  std::vector<int32_t> run;
  for (size_t i = 0; i <= chat.ids.size(); ++i) {
    if (i < chat.ids.size() && chat.assistant_mask[i]) {
      run.push_back(chat.ids[i]);
    } else if (!run.empty()) {
      runs.push_back(tokenizer.Decode(run));
      run.clear();
    }
  }
  return runs;
}

TEST_CASE("a multi-turn chat switching from think to no-think renders as Qwen3's template does") {
  const Tokenizer& tok = Qwen3();
  std::vector<ChatMessage> messages = {
      System("You are terse."),
      User("What is 2+2?", ThinkingFlag::kThink),
      Assistant("4", "2 plus 2 is 4."),
      User("And 3+3?", ThinkingFlag::kNoThink),
      Assistant("6"),
  };
  auto chat = RenderChat(tok, messages, {}, ChatTemplateOptions());
  REQUIRE(chat.ok());
  // Reasoning of turns before the last query is dropped; the final no-think
  // answer carries the empty think block.
  CHECK(chat->text ==
        "<|im_start|>system\nYou are terse.<|im_end|>\n"
        "<|im_start|>user\nWhat is 2+2? /think<|im_end|>\n"
        "<|im_start|>assistant\n4<|im_end|>\n"
        "<|im_start|>user\nAnd 3+3? /no_think<|im_end|>\n"
        "<|im_start|>assistant\n<think>\n\n</think>\n\n6<|im_end|>\n");
  CHECK(chat->ids == tok.Encode(chat->text));
  REQUIRE(chat->assistant_mask.size() == chat->ids.size());
  CHECK(AssistantRuns(tok, *chat) ==
        std::vector<std::string>{"4<|im_end|>", "<think>\n\n</think>\n\n6<|im_end|>"});
}

TEST_CASE("switching from no-think to think keeps the reasoning of the answer after the last query") {
  const Tokenizer& tok = Qwen3();
  std::vector<ChatMessage> messages = {
      User("Hi", ThinkingFlag::kNoThink),
      Assistant("Hello!"),
      User("Prove it.", ThinkingFlag::kThink),
      Assistant("Done.", "First, note that...\n"),
  };
  auto chat = RenderChat(tok, messages, {}, ChatTemplateOptions());
  REQUIRE(chat.ok());
  CHECK(chat->text ==
        "<|im_start|>user\nHi /no_think<|im_end|>\n"
        "<|im_start|>assistant\nHello!<|im_end|>\n"
        "<|im_start|>user\nProve it. /think<|im_end|>\n"
        "<|im_start|>assistant\n<think>\nFirst, note that...\n</think>\n\nDone.<|im_end|>\n");
  CHECK(AssistantRuns(tok, *chat) ==
        std::vector<std::string>{"Hello!<|im_end|>", "<think>\nFirst, note that...\n</think>\n\nDone.<|im_end|>"});
  // The think tags are the dedicated added tokens, not text.
  CHECK(std::count(chat->ids.begin(), chat->ids.end(), *tok.TokenId("<think>")) == 1);
}

TEST_CASE("reasoning written inside the content is split out as the template does") {
  auto chat = RenderChat(Qwen3(), {User("q"), Assistant("<think>\nhmm\n</think>\n\nanswer")}, {},
                         ChatTemplateOptions());
  REQUIRE(chat.ok());
  CHECK(chat->text ==
        "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n<think>\nhmm\n</think>\n\nanswer<|im_end|>\n");
}

TEST_CASE("the generation prompt is masked out, with or without the prefilled empty think block") {
  const Tokenizer& tok = Qwen3();
  ChatTemplateOptions options;
  options.add_generation_prompt = true;
  auto open = RenderChat(tok, {User("Hi", ThinkingFlag::kThink)}, {}, options);
  REQUIRE(open.ok());
  CHECK(open->text == "<|im_start|>user\nHi /think<|im_end|>\n<|im_start|>assistant\n");
  CHECK(std::count(open->assistant_mask.begin(), open->assistant_mask.end(), 1) == 0);
  options.prefill_empty_think = true;
  auto closed = RenderChat(tok, {User("Hi")}, {}, options);
  REQUIRE(closed.ok());
  CHECK(closed->text == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
  CHECK(closed->ids == tok.Encode(closed->text));
  CHECK(std::count(closed->assistant_mask.begin(), closed->assistant_mask.end(), 1) == 0);
}

TEST_CASE("tools are declared in the system prompt and calls and results render in Qwen3's format") {
  const Tokenizer& tok = Qwen3();
  std::vector<OrderedJson> tools = {OrderedJson::parse(R"({"type": "function", "function": {
      "name": "get_weather", "description": "Weather \"now\"",
      "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}})")};
  ChatMessage call = Assistant("Let me check.");
  call.tool_calls.push_back(ToolCall{"get_weather", OrderedJson::parse(R"({"city": "Paris", "days": 2})")});
  std::vector<ChatMessage> messages = {System("Be brief."), User("Weather in Paris?"), call,
                                       Tool("{\"temp_c\": 21}"), Tool("{\"temp_c\": 22}"),
                                       Assistant("21 °C.")};
  auto chat = RenderChat(tok, messages, tools, ChatTemplateOptions());
  REQUIRE(chat.ok());
  CHECK(chat->text ==
        "<|im_start|>system\nBe brief.\n\n# Tools\n\nYou may call one or more functions to assist with the user "
        "query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
        "{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Weather \\\"now\\\"\", "
        "\"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}}, \"required\": "
        "[\"city\"]}}}\n</tools>\n\nFor each function call, return a json object with function name and arguments "
        "within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": "
        "<args-json-object>}\n</tool_call><|im_end|>\n"
        "<|im_start|>user\nWeather in Paris?<|im_end|>\n"
        "<|im_start|>assistant\nLet me check.\n<tool_call>\n{\"name\": \"get_weather\", "
        "\"arguments\": {\"city\": \"Paris\", \"days\": 2}}\n</tool_call><|im_end|>\n"
        "<|im_start|>user\n<tool_response>\n{\"temp_c\": 21}\n</tool_response>\n<tool_response>\n{\"temp_c\": 22}\n"
        "</tool_response><|im_end|>\n"
        "<|im_start|>assistant\n<think>\n\n</think>\n\n21 °C.<|im_end|>\n");
  CHECK(chat->ids == tok.Encode(chat->text));
  // The tool responses are not the assistant's tokens; its call is.
  std::vector<std::string> runs = AssistantRuns(tok, *chat);
  REQUIRE(runs.size() == 2);
  auto parsed = ParseAssistantResponse(runs[0]);
  REQUIRE(parsed.ok());
  // Mid-turn answers carry no think block (Qwen3 keeps it on the last one only).
  CHECK_FALSE(parsed->has_think_block);
  CHECK(parsed->content == "Let me check.");
  REQUIRE(parsed->tool_calls.size() == 1);
  CHECK(parsed->tool_calls[0].name == "get_weather");
  CHECK(ToPythonJson(parsed->tool_calls[0].arguments) == "{\"city\": \"Paris\", \"days\": 2}");
}

TEST_CASE("tool calls are parsed out of generated text, several in a row") {
  auto parsed = ParseAssistantResponse(
      "<think>\nneed two\n</think>\n\n<tool_call>\n{\"name\": \"a\", \"arguments\": {\"x\": 1}}\n</tool_call>\n"
      "<tool_call>\n{\"name\": \"b\", \"arguments\": \"{\\\"y\\\": [1, 2]}\"}\n</tool_call>");
  REQUIRE(parsed.ok());
  CHECK(parsed->reasoning == "need two");
  CHECK(parsed->content.empty());
  REQUIRE(parsed->tool_calls.size() == 2);
  CHECK(parsed->tool_calls[1].name == "b");
  CHECK(ToPythonJson(parsed->tool_calls[1].arguments) == "{\"y\": [1, 2]}");
}

TEST_CASE("malformed tool calls are errors that name the call and the fault") {
  auto bad_json = ParseAssistantResponse("ok <tool_call>\n{\"name\": \"a\", \"arguments\": {\"x\": }\n</tool_call>");
  REQUIRE_FALSE(bad_json.ok());
  CHECK(std::string(bad_json.status().message()).find("tool call 1: invalid JSON") == 0);
  auto unclosed = ParseAssistantResponse("<tool_call>{\"name\": \"a\", \"arguments\": {}}");
  REQUIRE_FALSE(unclosed.ok());
  CHECK(unclosed.status().message() == "tool call 1: <tool_call> without a closing </tool_call>");
  auto no_name = ParseAssistantResponse(
      "<tool_call>{\"name\": \"a\", \"arguments\": {}}</tool_call><tool_call>{\"arguments\": {}}</tool_call>");
  REQUIRE_FALSE(no_name.ok());
  CHECK(no_name.status().message() == "tool call 2: \"name\" must be a non-empty string");
  auto list_args = ParseAssistantResponse("<tool_call>{\"name\": \"a\", \"arguments\": [1]}</tool_call>");
  REQUIRE_FALSE(list_args.ok());
  CHECK(list_args.status().message() == "tool call 1: \"arguments\" must be an object, got array");
}

TEST_CASE("marker text inside a message stays text unless allowed") {
  const Tokenizer& tok = Qwen3();
  const int32_t im_end = *tok.TokenId("<|im_end|>");
  std::vector<ChatMessage> messages = {User("fake<|im_end|>end")};
  auto safe = RenderChat(tok, messages, {}, ChatTemplateOptions());
  REQUIRE(safe.ok());
  CHECK(std::count(safe->ids.begin(), safe->ids.end(), im_end) == 1);  // only the real one
  CHECK(tok.Decode(safe->ids) == safe->text);
  ChatTemplateOptions options;
  options.allow_special_in_content = true;
  auto raw = RenderChat(tok, messages, {}, options);
  REQUIRE(raw.ok());
  CHECK(std::count(raw->ids.begin(), raw->ids.end(), im_end) == 2);
}

TEST_CASE("a tokenizer without ChatML tokens and a non-object tool are refused") {
  CHECK(RenderChat(testing::Gpt2(), {User("x")}, {}, ChatTemplateOptions()).status().code() ==
        absl::StatusCode::kFailedPrecondition);
  auto bad_tool = RenderChat(Qwen3(), {User("x")}, {OrderedJson("f")}, ChatTemplateOptions());
  REQUIRE_FALSE(bad_tool.ok());
  CHECK(bad_tool.status().message() == "tools[0]: expected a JSON object, got string");
}

}  // namespace
}  // namespace cascade::tokenizer

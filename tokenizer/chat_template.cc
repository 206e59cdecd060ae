#include "tokenizer/chat_template.h"

#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"

namespace cascade::tokenizer {
namespace {

constexpr char kImStart[] = "<|im_start|>";
constexpr char kImEnd[] = "<|im_end|>";
constexpr char kToolsPreamble[] =
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>";
constexpr char kToolsPostamble[] =
    "\n</tools>\n\nFor each function call, return a json object with function name and "
    "arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n"
    "{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call>";

absl::string_view StripNewlines(absl::string_view text, bool left, bool right) {
  while (left && !text.empty() && text.front() == '\n') text.remove_prefix(1);
  while (right && !text.empty() && text.back() == '\n') text.remove_suffix(1);
  return text;
}

void AppendPythonString(const std::string& text, std::string* out) {
  out->push_back('"');
  for (char c : text) {
    switch (c) {
      case '"': *out += "\\\""; break;
      case '\\': *out += "\\\\"; break;
      case '\n': *out += "\\n"; break;
      case '\r': *out += "\\r"; break;
      case '\t': *out += "\\t"; break;
      case '\b': *out += "\\b"; break;
      case '\f': *out += "\\f"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          absl::StrAppendFormat(out, "\\u%04x", static_cast<unsigned char>(c));
        } else {
          out->push_back(c);
        }
    }
  }
  out->push_back('"');
}

void AppendPythonJson(const OrderedJson& value, std::string* out) {
  switch (value.type()) {
    case OrderedJson::value_t::object: {
      out->push_back('{');
      bool first = true;
      for (const auto& [key, item] : value.items()) {
        if (!first) *out += ", ";
        first = false;
        AppendPythonString(key, out);
        *out += ": ";
        AppendPythonJson(item, out);
      }
      out->push_back('}');
      return;
    }
    case OrderedJson::value_t::array: {
      out->push_back('[');
      for (size_t i = 0; i < value.size(); ++i) {
        if (i > 0) *out += ", ";
        AppendPythonJson(value[i], out);
      }
      out->push_back(']');
      return;
    }
    case OrderedJson::value_t::string:
      AppendPythonString(value.get_ref<const std::string&>(), out);
      return;
    default:
      // Numbers, booleans and null print the same in both (shortest
      // round-trip floats, "true", "null").
      *out += value.dump();
  }
}

// One piece of the rendering: text, or a marker token given by its spelling.
struct Piece {
  std::string text;
  bool marker = false;
  bool assistant = false;
};

class Renderer {
 public:
  void Text(absl::string_view text, bool assistant = false) {
    if (!pieces_.empty() && !pieces_.back().marker && pieces_.back().assistant == assistant) {
      absl::StrAppend(&pieces_.back().text, text);
    } else {
      pieces_.push_back(Piece{std::string(text), false, assistant});
    }
  }
  void Marker(absl::string_view token, bool assistant = false) {
    pieces_.push_back(Piece{std::string(token), true, assistant});
  }
  const std::vector<Piece>& pieces() const { return pieces_; }

 private:
  std::vector<Piece> pieces_;
};

std::string ToolCallText(const ToolCall& call) {
  std::string out = "<tool_call>\n{\"name\": \"";
  absl::StrAppend(&out, call.name, "\", \"arguments\": ");
  AppendPythonJson(call.arguments, &out);
  out += "}\n</tool_call>";
  return out;
}

}  // namespace

std::string ToPythonJson(const OrderedJson& value) {
  std::string out;
  AppendPythonJson(value, &out);
  return out;
}

absl::StatusOr<RenderedChat> RenderChat(const Tokenizer& tokenizer,
                                        absl::Span<const ChatMessage> messages,
                                        absl::Span<const OrderedJson> tools,
                                        const ChatTemplateOptions& options) {
  std::optional<int32_t> im_start = tokenizer.TokenId(kImStart);
  std::optional<int32_t> im_end = tokenizer.TokenId(kImEnd);
  if (!im_start || !im_end) {
    return absl::FailedPreconditionError(
        "the tokenizer has no <|im_start|>/<|im_end|> tokens: it is not a ChatML tokenizer");
  }
  Renderer r;
  const bool system_first = !messages.empty() && messages[0].role == Role::kSystem;

  // 1. The system turn, with the tool declarations when there are tools.
  if (!tools.empty()) {
    r.Marker(kImStart);
    r.Text("system\n");
    if (system_first) r.Text(absl::StrCat(messages[0].content, "\n\n"));
    r.Text(kToolsPreamble);
    for (size_t i = 0; i < tools.size(); ++i) {
      if (!tools[i].is_object()) {
        return absl::InvalidArgumentError(
            absl::StrCat("tools[", i, "]: expected a JSON object, got ", tools[i].type_name()));
      }
      r.Text(absl::StrCat("\n", ToPythonJson(tools[i])));
    }
    r.Text(kToolsPostamble);
    r.Marker(kImEnd);
    r.Text("\n");
  } else if (system_first) {
    r.Marker(kImStart);
    r.Text(absl::StrCat("system\n", messages[0].content));
    r.Marker(kImEnd);
    r.Text("\n");
  }

  // 2. The last real user query: think blocks are kept only after it. A
  // user turn that only carries tool responses does not count.
  size_t last_query = messages.empty() ? 0 : messages.size() - 1;
  for (size_t k = messages.size(); k-- > 0;) {
    const ChatMessage& m = messages[k];
    if (m.role == Role::kUser && !(absl::StartsWith(m.content, "<tool_response>") &&
                                   absl::EndsWith(m.content, "</tool_response>"))) {
      last_query = k;
      break;
    }
  }

  // 3. The turns.
  for (size_t i = 0; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    switch (m.role) {
      case Role::kSystem:
        if (i == 0) break;  // rendered above
        [[fallthrough]];
      case Role::kUser: {
        std::string content = m.content;
        if (m.flag != ThinkingFlag::kNone) {
          absl::StrAppend(&content, content.empty() ? "" : " ",
                          m.flag == ThinkingFlag::kThink ? "/think" : "/no_think");
        }
        r.Marker(kImStart);
        r.Text(absl::StrCat(m.role == Role::kUser ? "user" : "system", "\n", content));
        r.Marker(kImEnd);
        r.Text("\n");
        break;
      }
      case Role::kAssistant: {
        absl::string_view content = m.content;
        std::string reasoning;
        if (m.reasoning.has_value()) {
          reasoning = *m.reasoning;
        } else if (size_t close = content.find("</think>"); close != absl::string_view::npos) {
          absl::string_view before = StripNewlines(content.substr(0, close), false, true);
          if (size_t open = before.rfind("<think>"); open != absl::string_view::npos) {
            before = before.substr(open + strlen("<think>"));
          }
          reasoning = std::string(StripNewlines(before, true, false));
          content = StripNewlines(content.substr(content.rfind("</think>") + strlen("</think>")), true, false);
        }
        std::string body;
        if (i > last_query && (i + 1 == messages.size() || !reasoning.empty())) {
          body = absl::StrCat("<think>\n", StripNewlines(reasoning, true, true), "\n</think>\n\n",
                              StripNewlines(content, true, false));
        } else {
          body = std::string(content);
        }
        for (size_t c = 0; c < m.tool_calls.size(); ++c) {
          if (m.tool_calls[c].name.empty()) {
            return absl::InvalidArgumentError(
                absl::StrCat("messages[", i, "].tool_calls[", c, "]: the tool call has no name"));
          }
          if (c > 0 || !content.empty()) body += "\n";
          body += ToolCallText(m.tool_calls[c]);
        }
        r.Marker(kImStart);
        r.Text("assistant\n");
        r.Text(body, /*assistant=*/true);
        r.Marker(kImEnd, /*assistant=*/true);
        r.Text("\n");
        break;
      }
      case Role::kTool: {
        if (i == 0 || messages[i - 1].role != Role::kTool) {
          r.Marker(kImStart);
          r.Text("user");
        }
        r.Text(absl::StrCat("\n<tool_response>\n", m.content, "\n</tool_response>"));
        if (i + 1 == messages.size() || messages[i + 1].role != Role::kTool) {
          r.Marker(kImEnd);
          r.Text("\n");
        }
        break;
      }
    }
  }
  if (options.add_generation_prompt) {
    r.Marker(kImStart);
    r.Text("assistant\n");
    if (options.prefill_empty_think) r.Text("<think>\n\n</think>\n\n");
  }

  // 4. Tokens and mask, piece by piece.
  RenderedChat out;
  for (const Piece& piece : r.pieces()) {
    absl::StrAppend(&out.text, piece.text);
    if (piece.marker) {
      out.ids.push_back(piece.text == kImStart ? *im_start : *im_end);
      out.assistant_mask.push_back(piece.assistant ? 1 : 0);
      continue;
    }
    std::vector<int32_t> ids = tokenizer.Encode(piece.text, options.allow_special_in_content);
    out.ids.insert(out.ids.end(), ids.begin(), ids.end());
    out.assistant_mask.insert(out.assistant_mask.end(), ids.size(), piece.assistant ? 1 : 0);
  }
  return out;
}

absl::StatusOr<ParsedResponse> ParseAssistantResponse(absl::string_view text) {
  ParsedResponse parsed;
  absl::string_view rest = text;
  // Text decoded with its end-of-turn token still attached.
  for (absl::string_view end : {"<|im_end|>", "<|endoftext|>"}) {
    if (absl::ConsumeSuffix(&rest, end)) break;
  }
  if (size_t close = rest.find("</think>"); close != absl::string_view::npos) {
    absl::string_view inside = rest.substr(0, close);
    // The opening tag may be in the prompt (prefilled) rather than the text.
    if (size_t open = inside.find("<think>"); open != absl::string_view::npos) {
      inside = inside.substr(open + strlen("<think>"));
    }
    parsed.reasoning = std::string(StripNewlines(inside, true, true));
    parsed.has_think_block = true;
    rest = StripNewlines(rest.substr(close + strlen("</think>")), true, false);
  }
  std::string content;
  int call_number = 0;
  while (true) {
    size_t open = rest.find("<tool_call>");
    if (open == absl::string_view::npos) {
      content += std::string(rest);
      break;
    }
    content += std::string(rest.substr(0, open));
    ++call_number;
    rest.remove_prefix(open + strlen("<tool_call>"));
    size_t close = rest.find("</tool_call>");
    if (close == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("tool call ", call_number, ": <tool_call> without a closing </tool_call>"));
    }
    absl::string_view body = absl::StripAsciiWhitespace(rest.substr(0, close));
    rest.remove_prefix(close + strlen("</tool_call>"));
    const std::string where = absl::StrCat("tool call ", call_number, ": ");
    OrderedJson call = OrderedJson::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
    if (call.is_discarded()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "invalid JSON: ", OrderedJson(std::string(body)).dump()));
    }
    if (!call.is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(where, "expected a JSON object, got ", call.type_name()));
    }
    auto name = call.find("name");
    if (name == call.end() || !name->is_string() || name->get_ref<const std::string&>().empty()) {
      return absl::InvalidArgumentError(absl::StrCat(where, "\"name\" must be a non-empty string"));
    }
    ToolCall parsed_call;
    parsed_call.name = name->get<std::string>();
    auto arguments = call.find("arguments");
    if (arguments == call.end()) {
      return absl::InvalidArgumentError(absl::StrCat(where, "\"arguments\" is missing"));
    }
    OrderedJson args = *arguments;
    if (args.is_string()) {
      // Some models emit the arguments as a JSON string holding the object.
      const std::string& inner = args.get_ref<const std::string&>();
      OrderedJson decoded = OrderedJson::parse(inner, nullptr, /*allow_exceptions=*/false);
      if (decoded.is_discarded()) {
        return absl::InvalidArgumentError(absl::StrCat(where, "\"arguments\" is a string but not JSON"));
      }
      args = std::move(decoded);
    }
    if (!args.is_object()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "\"arguments\" must be an object, got ", args.type_name()));
    }
    parsed_call.arguments = std::move(args);
    parsed.tool_calls.push_back(std::move(parsed_call));
  }
  parsed.content = std::string(absl::StripTrailingAsciiWhitespace(content));
  return parsed;
}

}  // namespace cascade::tokenizer

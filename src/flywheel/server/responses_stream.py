"""The Responses API's event sequence for one streamed answer (responses_api.py sends it): `EventStream` builds
the events as the pieces arrive — a `reasoning` item (one summary_text part) while the model thinks, a message item
(one output_text part) while text comes, one function_call item per tool call (arguments as deltas) — each with its
`sequence_number`, and keeps the output items for the final response object and the stored response."""

from __future__ import annotations

import json
from typing import Any, Protocol

from flywheel.gateway.tools import merge_tool_deltas
from flywheel.server.responses_wire import call_item, message_item, reasoning_item, summary_part, text_part

Notes = list[dict[str, Any]] | None
Extra = dict[str, Any] | None


class Turn(Protocol):
    """What the stream needs of the response it streams (responses_api._Turn)."""

    rid: str

    def response(self, status: str, output: list[dict[str, Any]], usage: dict[str, Any] | None,
                 extra: Extra = None) -> dict[str, Any]: ...


class EventStream:
    """The Responses event sequence for one answer, built as its pieces arrive: a message item (output_text part)
    while text comes, one function_call item per tool call (arguments as deltas); each item is closed with its
    `done` events before the next one opens (parallel calls too: OpenAI never interleaves items), and every item
    still open is closed at the end."""

    def __init__(self, turn: Turn):
        self.turn, self.rid = turn, turn.rid
        self.notes: Notes = None
        self.seq = 0
        self.items: list[dict[str, Any]] = []  # output items, in output order
        self.open: list[int] = []  # output indexes of the items not yet done
        self.message: int | None = None  # output index of the open message item
        self.thinking: int | None = None  # output index of the open reasoning item
        self.calls: dict[int, int] = {}  # tool-call index → output index
        self.tool_calls: list[dict[str, Any]] = []  # merged, for the trace
        self.text: list[str] = []

    def event(self, kind: str, **data: Any) -> bytes:
        payload = {"type": kind, "sequence_number": self.seq, **data}
        self.seq += 1
        return f"event: {kind}\ndata: {json.dumps(payload, ensure_ascii=False)}\n\n".encode()

    def response(self, status: str, usage: dict[str, Any] | None = None, extra: Extra = None,
                 output: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        return self.turn.response(status, self.items if output is None else output, usage, extra)

    def reasoning(self) -> str | None:
        """The text of the reasoning items so far (kept with the response), None when the model did not think."""
        return "".join(p["text"] for i in self.items if i["type"] == "reasoning" for p in i["summary"]) or None

    def thought(self, text: str) -> list[bytes]:
        """A piece of the model's reasoning: the reasoning item (opened first, with its summary part) grows."""
        out: list[bytes] = []
        if self.thinking is None:
            item = {**reasoning_item(self.rid, "", "in_progress"), "summary": []}
            if self.items:
                item["id"] += f"_{len(self.items)}"
            index, out = self._add(item)
            self.thinking = index
            item["summary"].append(summary_part(""))
            out.append(self.event("response.reasoning_summary_part.added", item_id=item["id"], output_index=index,
                                  summary_index=0, part=summary_part("")))
        index = self.thinking
        item = self.items[index]
        item["summary"][0]["text"] += text
        out.append(self.event("response.reasoning_summary_text.delta", item_id=item["id"], output_index=index,
                              summary_index=0, delta=text))
        return out

    def close_thought(self, item: dict[str, Any], index: int, status: str) -> list[bytes]:
        self.thinking = None
        part = item["summary"][0]
        item["status"] = status
        return [self.event("response.reasoning_summary_text.done", item_id=item["id"], output_index=index,
                           summary_index=0, text=part["text"]),
                self.event("response.reasoning_summary_part.done", item_id=item["id"], output_index=index,
                           summary_index=0, part=part),
                self.event("response.output_item.done", output_index=index, item=item)]

    def delta(self, text: str) -> list[bytes]:
        out: list[bytes] = []
        if self.message is None:
            number = sum(1 for i in self.items if i["type"] != "reasoning")  # as output_items numbers it
            item = {**message_item(f"msg_{self.rid[5:]}" + (f"_{number}" if number else ""), "", "in_progress"),
                    "content": []}
            index, out = self._add(item)
            self.message = index
            item["content"].append(text_part(""))
            out.append(self.event("response.content_part.added", item_id=item["id"], output_index=index,
                                  content_index=0, part=text_part("")))
        index = self.message
        if not text:
            return out
        part = self.items[index]["content"][0]
        part["text"] += text
        self.text.append(text)
        out.append(self.event("response.output_text.delta", item_id=self.items[index]["id"], output_index=index,
                              content_index=0, delta=text, logprobs=[]))
        return out

    def tool(self, piece: dict[str, Any]) -> list[bytes]:
        merge_tool_deltas(self.tool_calls, [piece])
        out: list[bytes] = []
        number = piece.get("index", 0)
        if number not in self.calls:  # a new item: the one before is done first, as OpenAI streams them
            fn = piece.get("function") or {}
            call_id = piece.get("id") or f"call_{self.rid[5:]}_{number}"
            self.calls[number], out = self._add(call_item(self.rid, number, call_id, fn.get("name") or "", "",
                                                          "in_progress"))
        index = self.calls[number]
        arguments = (piece.get("function") or {}).get("arguments")
        if arguments:
            self.items[index]["arguments"] += arguments
            if index in self.open:
                out.append(self.event("response.function_call_arguments.delta", item_id=self.items[index]["id"],
                                      output_index=index, delta=arguments))
        return out

    def _add(self, item: dict[str, Any]) -> tuple[int, list[bytes]]:
        """Open `item` as the next output item, every open one done first (OpenAI never interleaves items):
        (its output index, the events)."""
        out = self.close_all()
        index = len(self.items)
        self.items.append(item)
        self.open.append(index)
        out.append(self.event("response.output_item.added", output_index=index, item=item))
        return index, out

    def close(self, index: int | None) -> list[bytes]:
        if index is None or index not in self.open:
            return []
        self.open.remove(index)
        item = self.items[index]
        if item["type"] == "reasoning":
            return self.close_thought(item, index, "completed")
        if item["type"] == "function_call":
            item["status"] = "completed"
            return [self.event("response.function_call_arguments.done", item_id=item["id"], output_index=index,
                               arguments=item["arguments"]),
                    self.event("response.output_item.done", output_index=index, item=item)]
        self.message = None
        return self.close_message(item, index, "completed")

    def close_message(self, item: dict[str, Any], index: int, status: str) -> list[bytes]:
        part = item["content"][0]
        if self.notes:
            part["annotations"] = self.notes
        item["status"] = status
        return [self.event("response.output_text.done", item_id=item["id"], output_index=index, content_index=0,
                           text=part["text"], logprobs=[]),
                self.event("response.content_part.done", item_id=item["id"], output_index=index, content_index=0,
                           part=part),
                self.event("response.output_item.done", output_index=index, item=item)]

    def close_all(self, cut: bool = False) -> list[bytes]:
        out: list[bytes] = []
        for index in list(self.open):
            if cut and index == self.thinking:  # cut while still thinking
                self.open.remove(index)
                out += self.close_thought(self.items[index], index, "incomplete")
            elif cut and index == self.message:
                self.open.remove(index)
                self.message = None
                out += self.close_message(self.items[index], index, "incomplete")
            else:
                out += self.close(index)
        return out

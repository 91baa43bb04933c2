"""The prompts sent to the inference server (pure: text in, chat messages out)."""

from __future__ import annotations

import re

from homeserver.ai.client import Message
from homeserver.ai.transcript import Line

SUMMARY_SYSTEM = (
    "You summarize a team chat for someone catching up. Use only the messages given. Be brief: "
    "the decisions, open questions and who is doing what, as a few short bullet points."
)
THREAD_SYSTEM = (
    "You summarize one discussion thread of a team chat. Use only the messages given: what was "
    "asked, what was decided, what is still open, in a few short bullet points."
)
SUGGEST_SYSTEM = (
    "You suggest replies in a team chat. Given the conversation and the message being answered, "
    "write exactly three short, different replies the user could send, one per line, with no "
    "numbering and no quotes."
)
ASK_SYSTEM = (
    "You answer a question about a team chat channel. Use only the messages given; when they do "
    "not hold the answer, say so. Be brief, and name who said what when it matters."
)
TOPICS_SYSTEM = (
    "You label the topics of a team chat channel. Given its recent messages, answer with at most "
    "five short topic labels (one to three words each), one per line, most important first."
)


def transcript(lines: list[Line]) -> str:
    return "\n".join(line.render() for line in lines)


def summary_prompt(lines: list[Line], thread: bool = False) -> list[Message]:
    return [
        {"role": "system", "content": THREAD_SYSTEM if thread else SUMMARY_SYSTEM},
        {"role": "user", "content": "Messages:\n" + transcript(lines)},
    ]


def ask_prompt(lines: list[Line], question: str) -> list[Message]:
    return [
        {"role": "system", "content": ASK_SYSTEM},
        {"role": "user", "content": "Messages:\n" + transcript(lines) + "\n\nQuestion: " + question},
    ]


def suggest_prompt(target: Line, before: list[Line]) -> list[Message]:
    return [
        {"role": "system", "content": SUGGEST_SYSTEM},
        {"role": "user", "content": "Conversation:\n" + transcript(before)
         + "\n\nMessage being answered:\n" + target.render()},
    ]


def topics_prompt(lines: list[Line]) -> list[Message]:
    return [
        {"role": "system", "content": TOPICS_SYSTEM},
        {"role": "user", "content": "Messages:\n" + transcript(lines)},
    ]


_BULLET = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s*")


def short_lines(text: str, n: int, max_len: int = 200) -> list[str]:
    """The first `n` non-empty lines of a model's answer, without bullets, numbers or quotes."""
    out: list[str] = []
    for raw in text.splitlines():
        line = _BULLET.sub("", raw).strip().strip('"\u201c\u201d').strip()
        if line and line not in out:
            out.append(line[:max_len])
        if len(out) == n:
            break
    return out

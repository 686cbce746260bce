"""Best-shot prompts (FunSearch, Methods, "Prompt building").

k programs from one island, sorted ascending by score, renamed ``priority_v0``,
``priority_v1``…; from v1 on the docstring reads "Improved version of
`priority_v0`."; then the header of the next version with an empty body, which
the model completes. The skeleton the function runs in comes first.

v0 keeps the docstring its sample was drawn under. The paper shows the template's there
(its programs all keep it), but shown that docstring, the embedded model wrote fewer kinds
of programs, more slowly, with no gain on validation (docs/evolve-levers.md).
"""

from __future__ import annotations

from dataclasses import replace

from genlab.search.funsearch.code import Function, parse_function, rename_calls
from genlab.search.funsearch.database import Program
from genlab.search.funsearch.spec import Spec

CHAT_SYSTEM = ("You are an expert Python programmer improving a heuristic. You answer with code only.")
CHAT_INSTRUCTION = ("Write the body of `{name}`, the last function above, so that it works better than the "
                    "earlier versions. Reply with the complete function `{name}` in one ```python code block.")
#: Under a grammar the reply can only be a body, so the instruction asks for just that.
CHAT_BODY_INSTRUCTION = ("Write the body of `{name}`, the last function above, so that it works better than the "
                         "earlier versions. Reply with the indented body only.")


def build_prompt(spec: Spec, programs: list[Program]) -> tuple[str, Function]:
    """Return the prompt text and the header function the model must complete."""
    name = spec.function_name
    parts = []
    for i, program in enumerate(programs):
        version = f"{name}_v{i}"
        function = replace(parse_function(program.code, name), name=version)
        if i >= 1:
            function = replace(function, docstring=f"Improved version of `{name}_v{i - 1}`.")
        # Recursive calls must name this version, not the function being evolved.
        parts.append(rename_calls(str(function), name, version))
    k = len(programs)
    header = replace(parse_function(programs[-1].code, name), name=f"{name}_v{k}", body="",
                     docstring=f"Improved version of `{name}_v{k - 1}`.")
    parts.append(header.header())
    return spec.prompt_skeleton.rstrip() + "\n\n\n" + "\n\n".join(parts), header


def chat_messages(prompt: str, header: Function, body_only: bool = False) -> list[dict[str, str]]:
    """Wrap a prompt for chat models: the same code, and what to do with it."""
    instruction = CHAT_BODY_INSTRUCTION if body_only else CHAT_INSTRUCTION
    return [{"role": "system", "content": CHAT_SYSTEM},
            {"role": "user", "content": f"```python\n{prompt}```\n\n" + instruction.format(name=header.name)}]

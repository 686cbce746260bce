"""Programmatic rewards for `genlab tune grpo --reward python:examples/tune/checks.py:NAME`.

Each is called as ``NAME(reply, row)`` with the prompt row's other fields in ``row``; a
checker may read the right answer, a learned reward model never sees it.
"""


def right_answer(reply: str, row: dict) -> float:
    """1 when the reply states the row's answer in the wanted form ("ANSWER: <value>"), else 0."""
    return float(reply.strip().lower() == f"answer: {row['answer']}".lower())

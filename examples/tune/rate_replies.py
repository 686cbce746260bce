"""Play the user in the feedback → tune → compare walkthrough (README, "From feedback to a tuned model").

    python examples/tune/rate_replies.py --base-url http://127.0.0.1:8000/v1 [--limit 140]

It asks a model served by `genlab serve` (or any genlab /v1 endpoint) the training questions
of right_wrong_prompts.jsonl through the openai SDK, as any client would, and rates each
reply through POST /v1/feedback the way this user would: they want "ANSWER: <value>" and
nothing else, so a reply that is exactly that gets a thumbs up, and any other a thumbs down
with the reply they wanted as the better answer. The held-out questions (format_dev,
format_eval) are never asked.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import urllib.request
from pathlib import Path

from openai import OpenAI

QUESTIONS = Path(__file__).resolve().parent / "right_wrong_prompts.jsonl"


def send_feedback(base_url: str, api_key: str, body: dict) -> None:
    """POST /v1/feedback (genlab's extension of the API, so not in the openai SDK)."""
    request = urllib.request.Request(f"{base_url}/feedback", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json",
                                              "Authorization": f"Bearer {api_key}"})
    with urllib.request.urlopen(request, timeout=30):
        pass          # a 4xx/5xx raises HTTPError with the server's message


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8000/v1")
    parser.add_argument("--model", default="local")
    parser.add_argument("--api-key", default=os.environ.get("OPENAI_API_KEY", "none"),
                        help="the server's key, when it was started with one (default $OPENAI_API_KEY)")
    parser.add_argument("--limit", type=int, default=140, help="questions to ask (at most 140)")
    args = parser.parse_args()
    client = OpenAI(base_url=args.base_url, api_key=args.api_key)
    rows = [json.loads(line) for line in QUESTIONS.read_text().splitlines()][:args.limit]
    ups = 0
    for number, row in enumerate(rows, 1):
        reply = client.chat.completions.create(model=args.model, messages=row["prompt"], max_tokens=48,
                                               temperature=0)
        text, wanted = reply.choices[0].message.content or "", f"ANSWER: {row['answer']}"
        rating = ({"rating": "up"} if re.fullmatch(rf"\s*{re.escape(wanted)}\s*", text)
                  else {"rating": "down", "better_response": wanted})
        ups += rating["rating"] == "up"
        send_feedback(args.base_url, args.api_key, {"response_id": reply.id, **rating})
        if number % 20 == 0 or number == len(rows):
            print(f"rated {number}/{len(rows)} replies ({ups} up)", flush=True)


if __name__ == "__main__":
    main()

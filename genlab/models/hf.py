"""The ``hf:DIR`` backend: a Hugging Face model folder (for example one written by
``genlab tune``) run in-process by transformers on the CPU.

It is several times slower than llama.cpp (about 17 tok/s against 110 for the embedded
model here), so it is for using a tuned model everywhere genlab takes ``--model``, not
for speed. Enum mode scores each label whole (its tokens and the end of the turn, in one
batch) and answers the likeliest, so the answer is always a label and labels that share
a first token are compared in full. JSON schemas and log-probabilities are not offered;
asking for them is an error rather than being ignored.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path
from typing import Iterator

from genlab.errors import ConfigError, RequestRejected
from genlab.models.backend import Backend, choose_label, files_tag
from genlab.models.request import EnumFormat, Request
from genlab.models.response import Chunk, Usage

DEFAULT_MAX_TOKENS = 256
#: What a request leaves unset samples as the embedded model's llama.cpp does (less its
#: min-p 0.05, which a request cannot set or unset), so a tuned copy of it is compared with
#: its base on equal terms. Temperature 1 with no cut, which genlab once passed, gives the
#: 135M model's long tail: word salad.
SAMPLING_DEFAULTS = {"temperature": 0.8, "top_k": 40, "top_p": 0.95}


#: transformers builds models under a process-wide meta-device context: two loads at once
#: (several eval threads asking for the same model) leave tied weights uninitialised.
_LOAD_LOCK = threading.Lock()


def _load(path: str, tag: str):
    with _LOAD_LOCK:
        return _load_once(path, tag)


@lru_cache(maxsize=2)
def _load_once(path: str, tag: str):
    """Load once per path and weights (``tag``): a model retrained into the same folder is read again."""
    from genlab.torch_setup import prepare_torch

    prepare_torch()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    model.eval()
    return tokenizer, model, threading.Lock()


def sampling_options(request: Request) -> dict:
    """generate()'s sampling options: the request's, else SAMPLING_DEFAULTS (top_k 0: no top-k cut)."""
    given = {"temperature": request.temperature, "top_k": request.top_k, "top_p": request.top_p}
    return SAMPLING_DEFAULTS | {name: value for name, value in given.items() if value is not None}


class HFBackend(Backend):
    supports_top_k = True
    supports_enum = True
    supports_completions = True
    free = True
    default_max_tokens = DEFAULT_MAX_TOKENS
    supports_structured_output = False
    supports_logprobs = False
    supports_penalties = False   # transformers has a repetition penalty, which is another formula
    supports_logit_bias = False

    def __init__(self, path: str):
        self.path = Path(path).expanduser()
        if not self.path.exists():
            if not self.path.is_absolute() and path.count("/") == 1:    # reads like a hub id: say why not
                raise ConfigError(f"hf:{path}: no such folder, and genlab downloads no models; fetch it yourself "
                                  f"(hf download {path} --local-dir DIR) and give hf:DIR")
            raise ConfigError(f"hf:{path}: no such folder; train one with genlab tune -o {path}, or point at a "
                              "saved model")
        if not (self.path / "config.json").is_file():
            raise ConfigError(f"hf:{path} is not a Hugging Face model folder (no config.json); "
                              "train one with genlab tune, or point at a saved model")
        self.model_id = f"hf:{self.path.name}"

    def describe(self) -> str:
        return f"{self.path} (transformers, CPU)"

    def weights_tag(self) -> str:
        return files_tag(*sorted(self.path.glob("*.safetensors")), *sorted(self.path.glob("*.bin")),
                         self.path / "config.json")

    def execute(self, request: Request, stream: bool) -> Iterator[Chunk | Usage]:
        import torch

        tokenizer, model, lock = _load(str(self.path), self.weights_tag())
        if request.is_chat:
            messages = [{"role": m.role, "content": m.text()} for m in request.messages]
            ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                                return_dict=True)["input_ids"]
        else:
            ids = tokenizer(request.prompt, return_tensors="pt")["input_ids"]
        # Bounded by what the model can attend to: a request for 1e9 tokens must not run for hours.
        context = int(getattr(model.config, "max_position_embeddings", 0) or 2048)
        room = context - int(ids.shape[1])
        if room <= 0:
            raise RequestRejected(f"the prompt is {ids.shape[1]} tokens; {self.model_id} reads at most {context}",
                                  param="messages" if request.is_chat else "prompt")
        sample = bool(request.temperature) if request.temperature is not None else True
        if isinstance(request.response_format, EnumFormat):
            with lock, torch.no_grad():
                label, made = _choose_label(tokenizer, model, ids, request.response_format.enum,
                                            request.temperature if sample else 0.0, request.seed)
            yield Chunk(0, label, "stop")
            yield Usage(prompt_tokens=int(ids.shape[1]), completion_tokens=made)
            return
        options = {"max_new_tokens": min(request.max_tokens or DEFAULT_MAX_TOKENS, room), "do_sample": sample,
                   "pad_token_id": tokenizer.pad_token_id or tokenizer.eos_token_id}
        if sample:
            options |= sampling_options(request)
        if request.stop:
            options |= {"stop_strings": list(request.stop), "tokenizer": tokenizer}
        with lock, torch.no_grad():
            if request.seed is not None:
                torch.manual_seed(request.seed)
            output = model.generate(ids, attention_mask=torch.ones_like(ids), **options)
        new = output[0, ids.shape[1]:]
        text = tokenizer.decode(new, skip_special_tokens=True)
        finish = "length" if len(new) >= options["max_new_tokens"] else "stop"
        for stop in request.stop or []:
            if stop in text:
                text, finish = text[:text.index(stop)], "stop"
        yield Chunk(0, text, finish)
        yield Usage(prompt_tokens=int(ids.shape[1]), completion_tokens=int(len(new)))


def _choose_label(tokenizer, model, ids, labels: list[str], temperature: float, seed: int | None) -> tuple[str, int]:
    """Return (label, its tokens): the likeliest label as a whole reply, or one drawn from the
    labels' softmax at ``temperature``."""
    import torch

    end = tokenizer.eos_token_id
    options = [tokenizer(label, add_special_tokens=False)["input_ids"] + [end] for label in labels]
    width = max(map(len, options))
    prompt = ids[0].tolist()
    batch = torch.tensor([prompt + o + [end] * (width - len(o)) for o in options])
    mask = torch.tensor([[1] * (len(prompt) + len(o)) + [0] * (width - len(o)) for o in options])
    logprobs = model(input_ids=batch, attention_mask=mask).logits[:, len(prompt) - 1:-1].log_softmax(-1)
    scores = torch.stack([logprobs[i, torch.arange(len(o)), torch.tensor(o)].sum() for i, o in enumerate(options)])
    index = choose_label(scores.tolist(), temperature, seed)
    return labels[index], len(options[index])

"""Set up torch and transformers the one way genlab runs them: offline, on a known number
of threads. Called before any model is loaded (embedder, trainers, the hf: backend)."""

from __future__ import annotations

import os
import warnings


def prepare_torch() -> None:
    """Forbid hub requests, quiet load reports, and use as many torch threads as cores.

    Every model genlab loads is on disk, so a hub request would be a bug. More torch
    threads than cores (or two processes sharing them) makes torch about 10x slower.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    # Read when datasets is imported (training only): no import here, which costs every caller 0.4 s.
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    import torch
    import transformers

    from genlab.machine import thread_count

    # Load reports ("lm_head.weight MISSING" for tied embeddings, which are then tied), progress
    # bars of loading and of dataset preparation, and a deprecation that TRL's own defaults set
    # off, are noise in genlab's output: training reports its own progress (train/trainer.py).
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    warnings.filterwarnings("ignore", message="`gradient_checkpointing", category=FutureWarning)
    if torch.get_num_threads() != thread_count():
        torch.set_num_threads(thread_count())
    # numpy's BLAS (OpenBLAS) keeps its own threads spinning after each product; beside
    # torch's on the same cores they made the next query embedding 5x slower (reranked
    # retrieval's p95 went from 28 to 121 ms). genlab's numpy products are small: one thread.
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")

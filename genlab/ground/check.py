"""Groundedness: is each claim of an answer backed by the passages it cites?

A claim is a sentence (as in Vertex AI's check-grounding). Each (claim, cited passage)
pair gets a verdict, from an autorater through enum mode ("supported" / "unsupported")
or, without a judge or when the judge fails, from lexical overlap: at least 60 % of the
claim's content words (Vertex's default citation threshold) and every number in it must
appear in the passage. A claim is supported when one of its passages supports it; a claim
with no citation is unsupported (ragas faithfulness counts it the same way).

    supported_fraction  = supported claims / claims
    citation_precision  = supporting (claim, passage) pairs / citations
"""

from __future__ import annotations

from dataclasses import dataclass, field

from genlab.errors import ConfigError, ModelError
from genlab.ground.answer import GroundedAnswer, split_sentences
from genlab.ground.support import lexical_support
from genlab.models import Model

METHODS = ("auto", "judge", "lexical")
LABELS = ["supported", "unsupported"]

JUDGE_PROMPT = """Passage:
{passage}

Claim: {claim}

Is everything the claim says stated in the passage? Answer "supported" if it is, "unsupported" if the \
passage does not say it or says something else."""


@dataclass
class ClaimCheck:
    claim: str
    chunk_indices: list[int]
    verdicts: list[bool]             # one per cited passage
    methods: list[str]               # judge or lexical, per verdict

    @property
    def supported(self) -> bool:
        return any(self.verdicts)


@dataclass
class GroundednessReport:
    claims: list[ClaimCheck] = field(default_factory=list)

    @property
    def supported_fraction(self) -> float | None:
        return sum(c.supported for c in self.claims) / len(self.claims) if self.claims else None

    @property
    def citation_precision(self) -> float | None:
        verdicts = [v for c in self.claims for v in c.verdicts]
        return sum(verdicts) / len(verdicts) if verdicts else None

    def to_dict(self) -> dict:
        return {"supported_fraction": self.supported_fraction, "citation_precision": self.citation_precision,
                "claims": [{"claim": c.claim, "supported": c.supported, "chunk_indices": c.chunk_indices,
                            "verdicts": c.verdicts, "methods": c.methods} for c in self.claims]}


def check_groundedness(answer: GroundedAnswer, judge: Model | None = None, method: str = "auto") -> GroundednessReport:
    """Check each claim of ``answer`` against its cited passages; an abstention has no claims."""
    if method not in METHODS:
        raise ConfigError(f"unknown groundedness method '{method}'; use {', '.join(METHODS)}")
    if method == "judge" and judge is None:
        raise ConfigError("the judge method needs a judge model (--judge SPEC)")
    report = GroundednessReport()
    if answer.abstained:
        return report
    cited = {s.text.strip(): list(s.chunk_indices) for s in answer.supports}
    for claim in split_sentences(answer.answer):
        indices = cited.get(claim, [])
        verdicts, methods = [], []
        for index in indices:
            verdict, used = _verdict(claim, answer.chunks[index].text, judge, method)
            verdicts.append(verdict)
            methods.append(used)
        report.claims.append(ClaimCheck(claim, indices, verdicts, methods))
    return report


def _verdict(claim: str, passage: str, judge: Model | None, method: str) -> tuple[bool, str]:
    if method != "lexical" and judge is not None:
        try:
            response = judge.chat(JUDGE_PROMPT.format(passage=passage, claim=claim), temperature=0, max_tokens=8,
                                  response_format={"type": "enum", "enum": LABELS}, cache=True)
            return response.text.strip() == "supported", "judge"
        except ModelError:
            if method == "judge":
                raise
    return lexical_support(claim, passage), "lexical"


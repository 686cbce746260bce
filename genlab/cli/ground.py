"""`genlab notebook …` and `genlab ask`: answers grounded in the user's sources."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table
from rich.text import Text

from genlab.cli.common import (ModelOpt, app, builtin_forms, chat_lines, err, labelled, note_busy_cores, on_ctrl_c,
                               out, output_file, progress_bars, stage_progress)
from genlab.errors import ConfigError, GenlabError

notebook_app = typer.Typer(no_args_is_help=True, help="Notebooks: your sources, indexed for grounded answers.")
app.add_typer(notebook_app, name="notebook")

NameArg = typer.Argument(..., help="The notebook's name (genlab notebook list shows them).")
SkipBadOpt = typer.Option(False, "--skip-bad", help="Add the readable files and list the others.")
KOpt = typer.Option(4, "-k", min=1, help="Passages to retrieve; the abstention gates read them all.")
ShownOpt = typer.Option(2, "--shown", min=1, help="Of those, how many the model is shown (2 suits the embedded "
                        "model; a bigger one may use more).")
MinSimilarityOpt = typer.Option(None, "--min-similarity",
                                help="Cosine the best passage must reach, else abstain (default 0.35).")
MinCoverageOpt = typer.Option(None, "--min-coverage", min=0.0, max=1.0,
                              help="Share of the question's words (weighted by rarity) one passage must hold, "
                                   "and no word may be one the sources never use, else abstain "
                                   "(default 0.65; 0 turns this gate off).")
QuoteOpt = typer.Option(True, "--quote/--no-quote", help="When the model's answer cites nothing the passages hold, "
                        "answer with their sentence closest to the question, quoted (--json keeps the draft).")


def _search(source: str, method: str | None = None):
    """A notebook name (searched by ``method``, default reranked), or any search-backend spec
    (it has a ':')."""
    from genlab.ground.retrieval import DEFAULT_METHOD, NotebookSearch
    from genlab.models import get_backend

    backend = get_backend(source, "search") if ":" in source else NotebookSearch.open(source, method or DEFAULT_METHOD)
    if isinstance(backend, NotebookSearch) and not backend.chunks:
        name = backend.notebook.name
        raise ConfigError(f"notebook {name} has no sources yet; add some with `genlab notebook add {name} FILE|DIR…`")
    return backend


def _not_empty(text: str, what: str) -> None:
    if not text.strip():
        raise ConfigError(f"the {what} is empty; give some words, e.g. \"When was the lighthouse built?\"")


@notebook_app.command()
def create(name: str = typer.Argument(..., help="Letters, digits, '-', '_', '.'."),
           paths: Optional[list[Path]] = typer.Argument(None, help="Sources to add at once, as genlab notebook add "
                                                          "takes them."),
           embedder: Optional[str] = typer.Option(None, "--embedder",
                                                  help="A sentence-transformers folder (default all-MiniLM-L6-v2)."),
           skip_bad: bool = SkipBadOpt) -> None:
    """Create a notebook, empty or with sources.

    Examples:

      genlab notebook create velmora examples/notebook/velmora

      genlab notebook create notes --embedder runs/emb
    """
    from genlab.ground.notebook import Notebook, expand_paths

    if paths:
        expand_paths(paths, [])          # a path that is not there is refused before the notebook exists
    notebook = Notebook.create(name, embedder)
    if not paths:
        out.print(f"created notebook {name} ({notebook.path}); add sources with `genlab notebook add {name} FILE|DIR…`")
        return
    out.print(f"created notebook {name} ({notebook.path})")
    _add(notebook, name, paths, skip_bad)


@notebook_app.command()
def add(name: str = NameArg, paths: list[Path] = typer.Argument(..., help="PDF, Markdown, text or HTML files, or folders."),
        skip_bad: bool = SkipBadOpt) -> None:
    """Add sources; unchanged files are skipped, changed ones re-indexed.

    Example: genlab notebook add velmora examples/notebook/velmora
    """
    from genlab.ground.notebook import Notebook

    _add(Notebook.open(name), name, paths, skip_bad)


@notebook_app.command()
def refresh(name: str = NameArg) -> None:
    """Re-index the sources whose files changed since they were added; name the missing ones.

    Example: genlab notebook refresh velmora
    """
    from genlab.ground.notebook import Notebook

    notebook = Notebook.open(name)
    states = [(source, source.on_disk()) for source in notebook.sources()]
    for source, state in states:
        if state == "missing":
            err.print(labelled("missing", "yellow", f"{source.path} (still answered from; to drop it: "
                                                    f"genlab notebook remove {name} {source.id})"))
    changed = [Path(source.path) for source, state in states if state == "changed"]
    if changed:
        _add(notebook, name, changed, skip_bad=False)
    else:
        out.print(f"no file of notebook {name} changed since it was added")


def _add(notebook, name: str, paths: list[Path], skip_bad: bool) -> None:
    note_busy_cores()
    started = time.time()
    with on_ctrl_c(lambda: f"interrupted: the {sum(1 for s in notebook.sources() if s.added >= started)} files "
                           f"indexed before it stay in {name}; the same command adds the rest"), \
            stage_progress() as report:
        result = notebook.add(paths, skip_bad=skip_bad, progress=report)
    for path in result.added:
        out.print(f"added {path}")
    for path in result.updated:
        out.print(f"re-indexed {path} (changed)")
    for path in result.unchanged:
        out.print(f"unchanged {path}", style="dim")
    for problem in result.skipped:
        err.print(labelled("skipped", "yellow", problem))
    rate = f" ({result.chunks / result.seconds:.3g} chunks/s)" if result.chunks else ""
    out.print(f"{result.chunks} new chunks in {result.seconds:.1f} s{rate}; "
              f"notebook {name} has {notebook.chunk_count()} chunks")


@notebook_app.command()
def remove(name: str = NameArg, sources: list[str] = typer.Argument(..., help="Source ids (as `genlab notebook sources` "
                                                          "lists them), paths or file names.")) -> None:
    """Remove sources, with their chunks, from a notebook (your files are untouched).

    Example: genlab notebook remove velmora ferry.txt
    """
    from genlab.ground.notebook import Notebook

    notebook = Notebook.open(name)
    for source in notebook.remove(sources):
        out.print(f"removed {source.path} ({source.chunks} chunks)")
    out.print(f"notebook {name} has {notebook.chunk_count()} chunks")


@notebook_app.command("list")
def list_() -> None:
    """List notebooks."""
    from genlab.ground.notebook import Notebook, list_notebooks

    names = list_notebooks()
    if not names:
        out.print("no notebooks yet; create one with `genlab notebook create NAME`")
        return
    table = Table("notebook", "sources", "chunks", "embedder")
    for name in names:
        notebook = Notebook.open(name)
        table.add_row(name, str(len(notebook.sources())), str(notebook.chunk_count()), notebook.embedder_name)
        notebook.close()
    out.print(table)


@notebook_app.command()
def sources(name: str = NameArg) -> None:
    """List a notebook's sources."""
    from genlab.ground.notebook import Notebook

    table = Table("id", "title", "kind", "pages", "chunks", "characters", "path", "file")
    states = set()
    for s in Notebook.open(name).sources():
        states.add(state := s.on_disk())
        table.add_row(str(s.id), s.title, s.kind, str(s.pages), str(s.chunks), str(s.chars), s.path, state)
    out.print(table)
    if "changed" in states:
        err.print(f"a changed file is answered from as it was; re-index it: genlab notebook refresh {name}")
    if "missing" in states:
        err.print(f"a missing file is still answered from; to drop it: genlab notebook remove {name} ID")


@notebook_app.command()
def delete(name: str = NameArg, yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask.")) -> None:
    """Delete a notebook (its index; your files are untouched)."""
    from genlab.ground.notebook import Notebook

    if not yes and sys.stdin.isatty() and not typer.confirm(f"delete notebook {name}?"):
        raise typer.Exit(1)
    Notebook.delete(name)
    out.print(f"deleted notebook {name}")


@notebook_app.command()
def search(name: str = NameArg, query: str = typer.Argument(..., help="What to look for."),
           k: int = typer.Option(5, "-k", min=1, help="Passages to show."),
           method: str = typer.Option("reranked", "--method", help="bm25, dense, hybrid or reranked.")) -> None:
    """Show what retrieval finds, without a model.  Example: genlab notebook search velmora "ferry fares" """
    _not_empty(query, "query")
    table = Table("#", "score", "cosine", "source", "page", "span", "text")
    for i, p in enumerate(_search(name, method).search(query, k), 1):
        table.add_row(str(i), f"{p.score:.3f}", f"{p.similarity:.2f}", p.title, str(p.page or ""),
                      f"{p.start}–{p.end}", " ".join(p.text.split())[:100])
    out.print(table)


def _print_answer(answer, check=None) -> None:
    style = "yellow" if answer.abstained else "bold"
    out.print(answer.with_markers(), style=style)
    if answer.abstained and answer.abstain_reason:
        err.print(f"({answer.abstain_reason})", style="dim")    # stdout stays the answer alone
    cited = sorted({i for s in answer.supports for i in s.chunk_indices})
    for i in cited:
        p = answer.chunks[i]
        out.print(Text.assemble("  ", (f"[{i + 1}]", "cyan"), f" {p.where}, characters {p.start}–{p.end}: ",
                                (" ".join(p.text.split())[:160], "dim")))
    if answer.draft is not None:
        err.print("(quoted from the sources: the model's answer cited nothing they hold; --no-quote shows it)", style="dim")
    elif not answer.abstained and not answer.supports:
        err.print("no sentence of this answer is backed by a retrieved passage", style="yellow")
    if check is not None:
        fraction, precision = check.supported_fraction, check.citation_precision
        out.print(f"groundedness: {_pct(fraction)} of claims supported, citation precision {_pct(precision)}")


def _warn_stale(answer, search_) -> None:
    """Name a cited file that changed or went missing since it was indexed: the answer quotes
    it as it was. Only the cited files are read, so a large notebook costs nothing extra."""
    from genlab.ground.retrieval import NotebookSearch

    if not isinstance(search_, NotebookSearch):
        return
    cited = {answer.chunks[i].source for s in answer.supports for i in s.chunk_indices}
    name = search_.notebook.name
    for source in search_.notebook.sources():
        if source.path in cited and (state := source.on_disk()) != "indexed":
            what, fix = (("changed", f"re-index it: genlab notebook refresh {name}") if state == "changed" else
                         ("been removed", f"drop it: genlab notebook remove {name} {source.id}"))
            err.print(labelled("stale:", "yellow", f"{source.path} has {what} since it was indexed, and this answer "
                                                f"cites it as it was; {fix}"))


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.0f} %"


@app.command()
def ask(source: str = typer.Argument(..., help="Notebook name, or a search backend: " + builtin_forms("search") + "."),
        question: str = typer.Argument(..., help="What to ask the sources."),
        model: str = ModelOpt, k: int = KOpt, shown: int = ShownOpt,
        min_similarity: Optional[float] = MinSimilarityOpt,
        min_coverage: Optional[float] = MinCoverageOpt,
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object with Gemini-shaped grounding metadata."),
        quote: bool = QuoteOpt,
        check: bool = typer.Option(False, "--check", help="Also check each claim against its cited passages."),
        judge: Optional[str] = typer.Option(None, "--judge", help="Model spec of the groundedness judge "
                                            "(default: lexical overlap).")) -> None:
    """Answer from a notebook's sources with citations, or say the sources do not say.

    Example: genlab ask velmora "When was the lighthouse built?" --json
    """
    _not_empty(question, "question")
    from genlab.ground.answer import MIN_COVERAGE, MIN_SIMILARITY
    from genlab.ground.answer import ask as ground_ask
    from genlab.ground.check import check_groundedness
    from genlab.models import get_model

    llm = get_model(model, source="ground")
    search_ = _search(source)
    answer = ground_ask(llm, search_, question, k=k, shown=shown,
                        min_similarity=MIN_SIMILARITY if min_similarity is None else min_similarity,
                        min_coverage=MIN_COVERAGE if min_coverage is None else min_coverage, quote=quote)
    report = None
    if check:
        report = check_groundedness(answer, get_model(judge, source="ground") if judge else None,
                                    "judge" if judge else "lexical")
    if as_json:
        data = answer.to_dict()
        if report is not None:
            data["groundedness"] = report.to_dict()
        out.print_json(json.dumps(data, ensure_ascii=False))
    else:
        _print_answer(answer, report)
    _warn_stale(answer, search_)


@notebook_app.command()
def chat(name: str = NameArg, model: str = ModelOpt, k: int = KOpt, shown: int = ShownOpt, quote: bool = QuoteOpt) -> None:
    """Ask questions in a loop; each answer is grounded and cited. /exit or Ctrl-D leaves."""
    from genlab.ground.answer import ask as ground_ask
    from genlab.models import get_model

    llm, search_ = get_model(model, source="ground"), _search(name)
    history: list[dict] = []
    failed = False   # a question the model could not answer: exit 1 at the end, for scripts
    for line in chat_lines(f"asking notebook {name} with {model}", "/help, /exit leaves"):
        try:
            answer = ground_ask(llm, search_, line, k=k, shown=shown, history=history[-4:], quote=quote)
        except GenlabError as exc:   # this question failed, not the session: say why and go on
            err.print(labelled("error:", "red", str(exc)))
            failed = True
            continue
        _print_answer(answer)
        _warn_stale(answer, search_)
        history += [{"role": "user", "content": line}, {"role": "assistant", "content": answer.answer}]
    if failed:
        raise typer.Exit(1)


@notebook_app.command("eval")
def eval_(name: str = NameArg, qa: Path = typer.Argument(..., help="QA JSONL: question, evidence, optional answer/source, "
                                              "or answerable=false."),
          model: str = ModelOpt, k: int = KOpt, shown: int = ShownOpt,
          answers: bool = typer.Option(True, "--answers/--no-answers", help="Also answer every question and "
                                       "check groundedness end to end."),
          judge: Optional[str] = typer.Option(None, "--judge", help="Groundedness judge (default: lexical overlap)."),
          quote: bool = QuoteOpt,
          output: Optional[Path] = typer.Option(None, "--out", help="Write all figures and per-question rows as JSON.")) -> None:
    """Recall@k, MRR and nDCG@10 for BM25, dense and hybrid; then grounded answers end to end.

    Example: genlab notebook eval velmora examples/notebook/velmora-qa.jsonl
    """
    from genlab.ground.evaluation import RECALL_KS, end_to_end, load_qa, retrieval_methods, retrieval_metrics
    from genlab.models import get_model

    rows = load_qa(qa)
    search_ = _search(name)
    output = output_file(output, "--out", ".json")
    if answers:    # a mistyped spec is refused before retrieval is measured, not after
        llm = get_model(model, source="ground")
        judge_model = get_model(judge, source="ground") if judge else None
    answerable = sum(r.answerable for r in rows)
    methods = retrieval_methods(search_)
    with progress_bars() as progress:
        task = progress.add_task("retrieval", total=len(methods) * answerable)
        retrieval = retrieval_metrics(search_, rows, qa, methods, progress=lambda: progress.advance(task))
    table = Table("retriever", *[f"recall@{k_}" for k_ in RECALL_KS], "MRR", "nDCG@10",
                  title=f"{name}: {answerable} answerable questions")
    for method, m in retrieval.items():
        table.add_row(method, *[f"{m[f'recall@{k_}']:.3f}" for k_ in RECALL_KS], f"{m['mrr']:.3f}", f"{m['ndcg@10']:.3f}")
    out.print(table)
    result = {"notebook": name, "qa": str(qa), "retrieval": retrieval}
    if answers:
        with progress_bars() as progress:
            task = progress.add_task("answers", total=len(rows))
            e2e = end_to_end(llm, search_, rows, judge=judge_model,
                             method="judge" if judge else "lexical", k=k, shown=shown, quote=quote,
                             progress=lambda: progress.advance(task))
        result["end_to_end"] = e2e
        out.print(f"end to end with {model} ({e2e['questions']} questions): "
                  f"claims supported {_pct(e2e['supported_fraction'])}, "
                  f"citation precision {_pct(e2e['citation_precision'])}, "
                  f"answer contains the reference {_pct(e2e['answer_contains_reference'])}, "
                  f"abstained on {_pct(e2e['abstained_when_answerable'])} of answerable and "
                  f"{_pct(e2e['abstained_when_unanswerable'])} of unanswerable questions; "
                  f"{_pct(e2e['quoted'])} of the answers given are quotes (the model's draft cited nothing)")
    if output:
        output.write_text(json.dumps(result, indent=2, ensure_ascii=False))
        out.print(f"wrote {output}")


def _write_document(document, output: Optional[Path], question_headings: bool = False) -> None:
    text = document.to_markdown(question_headings)
    if output:
        output.write_text(text)
        output.with_suffix(".json").write_text(json.dumps(document.to_dict(), indent=2, ensure_ascii=False))
        out.print(f"wrote {output} and {output.with_suffix('.json')}")
    else:
        out.print(text)


@notebook_app.command()
def briefing(name: str = NameArg, model: str = ModelOpt,
             output: Optional[Path] = typer.Option(None, "--out", help="Markdown file (JSON beside it).")) -> None:
    """A briefing doc: each source's key facts, with citations."""
    from genlab.ground.outputs import briefing as make_briefing
    from genlab.models import get_model

    search_, output = _search(name), output_file(output, "--out", ".md", beside=(".json",))
    with progress_bars() as progress:
        task = progress.add_task("sources", total=None)
        document = make_briefing(get_model(model, source="ground"), search_,
                                 progress=lambda done, total: progress.update(task, completed=done, total=total))
    _write_document(document, output)


@notebook_app.command()
def faq(name: str = NameArg, model: str = ModelOpt, items: int = typer.Option(6, "--items", min=1, help="Questions to ask."),
        output: Optional[Path] = typer.Option(None, "--out", help="Markdown file (JSON beside it).")) -> None:
    """Questions the sources answer, each answered with citations."""
    from genlab.ground.outputs import faq as make_faq
    from genlab.models import get_model

    search_, output = _search(name), output_file(output, "--out", ".md", beside=(".json",))
    with progress_bars() as progress:
        task = progress.add_task("questions", total=items)
        document = make_faq(get_model(model, source="ground"), search_, items=items,
                            progress=lambda done, total: progress.update(task, completed=done))
    _write_document(document, output, question_headings=True)


@notebook_app.command()
def audio(name: str = NameArg, model: str = ModelOpt,
          items: int = typer.Option(4, "--items", min=1, help="Topics the hosts talk through."),
          output: Path = typer.Option(Path("overview.wav"), "--out", help="WAV file; the transcript goes beside it "
                                      "(.json with times, .md with citations).")) -> None:
    """An audio overview: two hosts talk through the sources, spoken offline with espeak-ng.

    Example: genlab notebook audio velmora --out velmora.wav
    """
    from genlab.ground.audio import check_output_path, speak
    from genlab.ground.outputs import audio_script
    from genlab.models import get_model
    from genlab.models.media import espeak_binary

    check_output_path(output)    # fail before any model call: bad name, or no voice engine
    espeak_binary()
    search_, output = _search(name), output_file(output, "--out", beside=(".md", ".json"))   # .wav: checked above
    with progress_bars() as progress:
        task = progress.add_task("script", total=items)
        turns, document = audio_script(get_model(model, source="ground"), search_, items=items,
                                       progress=lambda done, total: progress.update(task, completed=done))
    record = speak(turns, output)
    lines = [f"# Audio overview: {name}", ""]
    lines += [f"**{t.speaker}:** {t.text}" + "".join(f" [{n}]" for n in t.citations) for t in turns]
    lines += ["", "## Sources", ""]
    lines += [f"[{n}] {p.where}, characters {p.start}–{p.end}"
              for n, p in enumerate(document.citations(), 1)]
    output.with_suffix(".md").write_text("\n".join(lines) + "\n")
    out.print(f"wrote {output} ({record['duration_s']:.1f} s, {len(turns)} turns, voices "
              f"{', '.join(f'{s}={v}' for s, v in record['voices'].items())}) and its transcript "
              f"{output.with_suffix('.md')}, {output.with_suffix('.json')}")

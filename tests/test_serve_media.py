"""`genlab serve`'s /v1/images/generations (cards), /v1/audio/speech (espeak-ng) and
/v1/embeddings (MiniLM), through the real `openai` SDK over real HTTP, and genlab's remote
image and speech backends against them."""

from __future__ import annotations

import base64
import io
import json
import wave

import numpy as np
import openai
import pytest
from PIL import Image

from genlab.errors import BudgetExceeded
from genlab.models import Budget, get_backend
from genlab.models.media import Metered, PictureRequest
from genlab.serve.media import card_request
from genlab.store import Store
from genlab.trailer import TrailerConfig, load_sources, make_trailer
from tests.pdf_writer import write_pdf
from tests.test_trailer import BOOK


@pytest.fixture
def client(served):
    return openai.OpenAI(base_url=served.base_url, api_key=served.key, max_retries=0)


def test_images_in_openais_shape(client, served):
    out = client.images.generate(model="cards", prompt="A lighthouse at night. Mood: mysterious. Title: The Keeper.",
                                 size="640x360", n=2)
    assert len(out.data) == 2
    picture = Image.open(io.BytesIO(base64.b64decode(out.data[0].b64_json)))
    assert picture.format == "PNG" and picture.size == (640, 360)
    rows = served.store().execute("SELECT model, source, cost_usd FROM calls WHERE model='cards'")
    assert len(rows) >= 2 and all(r["source"] == "serve" and r["cost_usd"] == 0.0 for r in rows)


def test_speech_in_openais_shape(client):
    out = client.audio.speech.create(model="espeak", voice="alloy", input="The ledger is kept in the museum.",
                                     response_format="wav")
    with wave.open(io.BytesIO(out.content)) as wav:
        assert wav.getnchannels() == 1 and wav.getsampwidth() == 2
        assert wav.getnframes() / wav.getframerate() > 1.0


def test_embeddings_in_openais_shape_are_the_embedders_own(client, served):
    """The SDK asks for base64 unless told otherwise; both encodings carry the embedder's vectors."""
    from genlab.ground.embed import load_embedder

    texts = ["The ferry leaves at noon.", "A library card costs nothing."]
    embedder = load_embedder()
    expected = embedder.encode(texts)
    packed = client.embeddings.create(model="all-MiniLM-L6-v2", input=texts)
    plain = client.embeddings.create(model="all-MiniLM-L6-v2", input=texts[0], encoding_format="float")
    assert [d.index for d in packed.data] == [0, 1] and len(packed.data[0].embedding) == 384
    assert np.allclose(np.array([d.embedding for d in packed.data]), expected, atol=1e-6)
    assert np.allclose(plain.data[0].embedding, expected[0], atol=1e-6)
    assert packed.usage.prompt_tokens == sum(embedder.token_counts(texts)) == packed.usage.total_tokens
    rows = served.store().execute("SELECT prompt_tokens, cost_usd FROM calls WHERE model='all-MiniLM-L6-v2' "
                                  "AND source='serve'")
    assert len(rows) >= 2 and rows[-1]["cost_usd"] == 0.0


def test_an_embedding_input_of_any_length_is_one_text(client):
    """2048 bounds the number of texts, not a text's characters (a 2,600-character text was refused)."""
    long = client.embeddings.create(model="all-MiniLM-L6-v2", input="The ferry leaves at noon. " * 100,
                                    encoding_format="float")
    assert len(long.data) == 1 and len(long.data[0].embedding) == 384


@pytest.mark.parametrize("asked, status, says", [
    ({"model": "text-embedding-3-small", "input": "hi"}, 404, "served: all-MiniLM-L6-v2"),
    ({"model": "all-MiniLM-L6-v2", "input": [[1, 2, 3]]}, 400, "invalid 'input"),
    ({"model": "all-MiniLM-L6-v2", "input": ["hi", ""]}, 400, "empty string"),
    ({"model": "all-MiniLM-L6-v2", "input": []}, 400, "invalid 'input'"),
    ({"model": "all-MiniLM-L6-v2", "input": ["hi"] * 2049}, 400, "give 1 to 2048 texts"),
    ({"model": "all-MiniLM-L6-v2", "input": "hi", "dimensions": 256}, 400, "gives 384"),
])
def test_embedding_errors_name_the_field(client, asked, status, says):
    with pytest.raises(openai.APIStatusError, match=says) as info:
        client.embeddings.create(**asked, encoding_format="float")
    assert info.value.status_code == status


def test_media_errors_are_openais(client):
    with pytest.raises(openai.BadRequestError, match="response_format=b64_json only"):
        client.images.generate(model="cards", prompt="x", response_format="url")
    with pytest.raises(openai.NotFoundError, match="image model 'dall-e-3' does not exist here; served: cards"):
        client.images.generate(model="dall-e-3", prompt="x")
    with pytest.raises(openai.BadRequestError, match="response_format=wav only"):
        client.audio.speech.create(model="espeak", voice="alloy", input="hi", response_format="mp3")
    with pytest.raises(openai.BadRequestError, match="invalid 'size'"):
        client.images.generate(model="cards", prompt="x", size="huge")
    with pytest.raises(openai.BadRequestError, match="espeak-ng failed with voice 'nosuchvoice'"):
        client.audio.speech.create(model="espeak", voice="nosuchvoice", input="hi", response_format="wav")


def test_a_card_takes_its_title_and_mood_from_the_prompt():
    card = card_request("Waves over a broken wall. Mood: tense. Title: The Storm. No text in the picture.", (640, 360))
    assert (card.title, card.mood) == ("The Storm", "tense") and "broken wall" in card.quote
    assert card_request("a quiet harbour at dawn", (64, 64)).mood == "calm"


def test_a_trailer_made_with_remote_pictures_and_voice_from_genlab_serve(served, tmp_path, local, monkeypatch):
    monkeypatch.setenv("GENLAB_API_KEY", served.key)
    before = {r["model"]: r["n"] for r in served.store().execute("SELECT model, COUNT(*) AS n FROM calls GROUP BY model")}
    config = TrailerConfig(images=f"{served.base_url}#cards", voice=f"{served.base_url}#espeak@en-gb",
                           size=(640, 360), fps=12)
    result = make_trailer(local, load_sources([str(write_pdf(tmp_path / "book.pdf", BOOK[:3]))]),
                          tmp_path / "trailer.mp4", config)
    after = {r["model"]: r["n"] for r in served.store().execute("SELECT model, COUNT(*) AS n FROM calls GROUP BY model")}
    assert after["cards"] - before.get("cards", 0) == len(result.scenes)
    assert after["espeak:en-gb"] - before.get("espeak:en-gb", 0) == len(result.scenes)   # the voice asked for
    board = json.loads(result.storyboard_json.read_text())
    assert board["images"] == config.images and result.video.stat().st_size > 0
    # genlab's own ledger has the same calls, under the specs it used.
    mine = {r["model"] for r in local.store.execute("SELECT model FROM calls")}
    assert {f"{served.base_url}#cards", f"{served.base_url}#espeak@en-gb"} <= mine


def test_a_usd_budget_stops_paid_pictures_before_they_overspend(served, genlab_home, monkeypatch):
    genlab_home.mkdir(parents=True, exist_ok=True)
    (genlab_home / "prices.json").write_text(json.dumps({"models": {"cards": {"output_cost_per_image": 0.02}}}))
    monkeypatch.setenv("GENLAB_API_KEY", served.key)
    budget = Budget(usd=0.05)
    images = Metered(get_backend(f"{served.base_url}#cards", "image"), store=Store(genlab_home / "genlab.db"),
                     budget=budget, source="test")
    request = PictureRequest("a lighthouse", "The Keeper", "", "calm", (64, 64))
    images.picture(request)
    images.picture(request)
    with pytest.raises(BudgetExceeded, match="costs \\$0.0200 and \\$0.0100 of the \\$0.05 budget is left"):
        images.picture(request)
    assert budget.spent_usd == pytest.approx(0.04)
    costs = [r["cost_usd"] for r in Store(genlab_home / "genlab.db").execute("SELECT cost_usd FROM calls")]
    assert costs == [0.02, 0.02]

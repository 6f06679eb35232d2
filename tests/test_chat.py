"""The conversation API: the decision picks retrieve or generate, and only that path runs."""
import numpy as np
import pytest

from gill_lite.chat import GillChat, Reply, dialogue_prompt
from gill_lite.inference import GillPipeline


class FakePipeline(GillPipeline):
    """GillPipeline's own respond / show_image, on faked computations (decoding, states, decision, retrieval,
    generation) that record each call."""

    def __init__(self, p_ret, emits=True, text="here it is"):
        super().__init__(model=None, parts=None)
        self.p_ret, self.emits, self.text = p_ret, emits, text
        self.calls = []

    def decode(self, context, max_new_tokens=32, stop_words=()):
        self.calls.append(("decode", context))
        return self.text, ("states" if self.emits else None)

    def img_states(self, context):
        self.calls.append(("img_states", context))
        return "states"

    def decide(self, states, top_cosine=None):
        self.calls.append(("decide", states, top_cosine))
        return {"generate": 1 - self.p_ret, "retrieve": self.p_ret}

    def retrieve(self, states, k=1, exclude=None):
        self.calls.append(("retrieve", states, k))
        return [[("img1", 0.9)]]

    def index_images(self, ids):
        return np.full((len(ids), 4, 4, 3), 1, np.uint8)

    def generate(self, states, seed=0):
        self.calls.append(("generate", states, seed))
        return np.full((1, 4, 4, 3), 2, np.uint8)

    def names(self):
        return [c[0] for c in self.calls]


def test_retrieve_when_the_decision_says_retrieve_and_never_runs_the_generator():
    pipe = FakePipeline(p_ret=0.8)
    reply = GillChat(pipe).respond(["show me a red circle"])
    assert reply.text == "here it is" and reply.emitted_img
    assert len(reply.images) == 1
    image, source, probs = reply.images[0]
    assert source == "retrieved" and (image == 1).all()
    assert probs == pytest.approx({"generate": 0.2, "retrieve": 0.8})
    assert "generate" not in pipe.names()
    # the emitted states are used as they are; the decision reads the score the one retrieval returned
    assert pipe.names() == ["decode", "retrieve", "decide"] and pipe.calls[2] == ("decide", "states", 0.9)


def test_generate_otherwise_and_show_no_retrieved_image():
    pipe = FakePipeline(p_ret=0.3)
    reply = GillChat(pipe, seed=5).respond(["draw a blue square"])
    assert reply.images[0].source == "generated" and (reply.images[0].image == 2).all()
    assert pipe.names() == ["decode", "retrieve", "decide", "generate"]  # the decision needs the top score
    assert ("generate", "states", 5) in pipe.calls


def test_no_image_when_the_model_does_not_emit_img_unless_forced():
    pipe = FakePipeline(p_ret=0.9, emits=False, text="it is red.")
    chat = GillChat(pipe)
    reply = chat.respond(["what colour is it?"])
    assert reply.images == [] and pipe.names() == ["decode"]
    reply = chat.respond(["what colour is it?"], force_image=True)
    assert reply.images[0].source == "retrieved"
    # the [IMG] states are read after the model's own words
    assert pipe.calls[2] == ("img_states", ["Q: what colour is it?\nA: it is red."])


def test_prompt_is_in_the_papers_dialogue_format():
    img = np.zeros((4, 4, 3), np.uint8)
    prompt = dialogue_prompt([img, "what is this?", Reply("a red circle."), "Q: and now?"])
    assert prompt[0] is not None and not isinstance(prompt[0], str)
    assert prompt[1] == "Q: what is this?\nA: a red circle.\nQ: and now?\nA:"
    assert dialogue_prompt(["hi"]) == ["Q: hi\nA:"]


def test_ask_keeps_the_conversation():
    pipe = FakePipeline(p_ret=0.1, emits=False, text="yes.")
    chat = GillChat(pipe)
    chat.ask("is it red?")
    chat.ask("is it big?")
    assert pipe.calls[-1] == ("decode", ["Q: is it red?\nA: yes.\nQ: is it big?\nA:"])
    assert len(chat.history) == 4
    chat.reset()
    assert chat.history == []
    with pytest.raises(ValueError):
        chat.ask()


def test_chat_widget_runs_headless_and_renders_each_turn():
    from gill_lite.widgets import ChatWidget

    pipe = FakePipeline(p_ret=0.7)
    picker = {"red circle": np.full((8, 8, 3), 200, np.uint8)}
    widget = ChatWidget(GillChat(pipe), picker_images=picker)
    widget.picker.value = "red circle"
    widget.text.value = "what is this?"
    reply = widget.send()
    assert reply.images[0].source == "retrieved"
    roles = [t[0] for t in widget.transcript]
    assert roles == ["user", "GILL"]
    assert widget.transcript[0][2] is picker["red circle"]
    assert "retrieved" in widget.transcript[1][3] and "0.70" in widget.transcript[1][3]
    assert len(widget.log.children) == 2
    # the picked image went to the model before the question
    first = pipe.calls[0][1]
    assert not isinstance(first[0], str) and first[1] == "Q: what is this?\nA:"
    assert widget.text.value == "" and widget.picker.value == "(no image)"
    assert widget.send(text="  ") is None  # nothing to send


def test_uploaded_image_decodes_fileupload_values():
    import io

    from PIL import Image

    from gill_lite.widgets import uploaded_image

    buf = io.BytesIO()
    Image.fromarray(np.full((5, 5, 3), 9, np.uint8)).save(buf, format="PNG")
    value = ({"name": "x.png", "type": "image/png", "size": 1, "content": memoryview(buf.getvalue())},)
    assert uploaded_image(value).shape == (5, 5, 3)
    assert uploaded_image(()) is None


def test_transcript_shows_the_conversation_without_a_pending_answer():
    from gill_lite.chat import ChatImage, transcript

    img = np.zeros((4, 4, 3), np.uint8)
    text = transcript(["show me", Reply("here.", [ChatImage(img, "generated", {})]), img, "what is it?", Reply("a circle.")])
    assert text == "Q: show me\nA: here.\n<image>\n<image>\nQ: what is it?\nA: a circle."


# ----------------------------------------------------------------- images of any size, the LM's window, failures

def words_and_images(prompt):
    """A stand-in position count: one per word, 4 per image."""
    return sum(len(x.split()) if isinstance(x, str) else 4 for x in prompt)


def test_images_reach_the_encoder_as_rgb_at_its_size_whatever_they_were():
    from PIL import Image

    from gill_lite.chat import encoder_image

    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[..., 0], rgba[:32, :, 3] = 255, 255  # red, transparent bottom half
    out = encoder_image(rgba, 32)
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    assert out[0, 0].tolist() == [255, 0, 0] and out[-1, -1].tolist() == [0, 0, 0]  # transparency on black
    assert encoder_image(np.full((10, 20), 7, np.uint8), 8).shape == (8, 8, 3)  # grey, not square
    assert encoder_image(np.ones((4, 4, 3)), 4).max() == 255  # floats in [0, 1]
    assert encoder_image(Image.new("P", (5, 9)), 6).shape == (6, 6, 3)
    assert encoder_image(np.zeros((5, 7, 3), np.uint8)).shape == (5, 7, 3)  # no size: kept
    with pytest.raises(ValueError, match="an image is"):
        encoder_image(np.zeros((4, 4, 2), np.uint8))

    pipe = FakePipeline(p_ret=0.9)
    chat = GillChat(pipe, image_size=16)
    chat.ask(np.zeros((64, 64, 4), np.uint8), "what is this?")
    chat.ask(np.zeros((8, 8), np.uint8), "and this?")
    images = [x for x in pipe.calls[-3][1] if not isinstance(x, str)]  # the last decode's prompt
    assert [im.shape for im in images] == [(16, 16, 3)] * 3  # the user's two and the one the model showed
    assert all(im.dtype == np.uint8 for im in images)


def test_the_conversation_stays_inside_the_window_dropping_the_oldest_turns():
    pipe = FakePipeline(p_ret=0.1, emits=False, text="yes it is.")
    chat = GillChat(pipe, max_positions=60, max_new_tokens=10, count_positions=words_and_images)
    assert chat.prompt_budget == 60 - 10 - 8 - 2
    dropped = []
    for i in range(12):
        reply = chat.ask(f"is the shape number {i} red?")
        dropped.append(reply.dropped_turns)
        prompt = [c for c in pipe.calls if c[0] == "decode"][-1][1]
        assert words_and_images(prompt) <= chat.prompt_budget
    assert dropped[0] == 0 and sum(dropped) > 0
    assert chat.history[-2] == "is the shape number 11 red?"  # the newest turn is always kept
    assert isinstance(chat.history[-1], Reply) and not isinstance(chat.history[0], Reply)  # whole turns dropped


def test_a_message_longer_than_the_window_keeps_its_last_words():
    pipe = FakePipeline(p_ret=0.1, emits=False, text="ok.")
    chat = GillChat(pipe, max_positions=60, max_new_tokens=10, count_positions=words_and_images)
    reply = chat.ask("red " * 200 + "is it a circle?")
    assert reply.shortened and reply.text == "ok."
    kept = chat.history[0]
    assert kept.endswith("is it a circle?") and words_and_images([kept]) < 40
    with pytest.raises(ValueError, match="too many images"):
        chat.ask(*[np.zeros((4, 4, 3), np.uint8)] * 12, "what?")
    with pytest.raises(ValueError, match="positions"):  # respond itself refuses what ask would trim
        chat.respond(["word " * 100])


def test_a_failed_turn_leaves_the_conversation_as_it_was():
    pipe = FakePipeline(p_ret=0.1, emits=False, text="yes.")
    chat = GillChat(pipe)
    chat.ask("is it red?")
    before = list(chat.history)
    broken = pipe.decode
    pipe.decode = lambda *args, **kwargs: (_ for _ in ()).throw(IndexError("index out of range in self"))
    with pytest.raises(IndexError):
        chat.ask("is it big?")
    assert chat.history == before
    pipe.decode = broken
    chat.ask("is it small?")
    assert pipe.calls[-1] == ("decode", ["Q: is it red?\nA: yes.\nQ: is it small?\nA:"])


def test_answers_stop_at_the_end_of_the_answer():
    from gill_lite.chat import clean_answer

    assert clean_answer("no, it is red. q") == "no, it is red."
    assert clean_answer("a circle. Q :") == "a circle."
    assert clean_answer("q") == ""
    assert clean_answer("a quiet square") == "a quiet square"
    reply = GillChat(FakePipeline(p_ret=0.1, emits=False, text="it is red. q")).respond(["colour?"])
    assert reply.text == "it is red."


def test_a_real_gill_answers_past_its_window_without_index_errors():
    """Random tiny GILL (128 positions): many turns, a long message and odd images never overflow the LM."""
    import torch

    from gill_fixtures import tiny_parts, tiny_train_cfg
    from gill_lite.model import GillModel
    from gill_lite.model.functional import context_embeds

    torch.manual_seed(0)
    parts = tiny_parts(layers=1)
    pipe = GillPipeline(GillModel.build(parts, tiny_train_cfg()), parts)
    images = np.random.default_rng(0).integers(0, 255, (3, 16, 16, 3), dtype=np.uint8)
    pipe.index = pipe.build_index(images, ["a", "b", "c"])
    chat = GillChat(pipe, max_new_tokens=6, force_image=True, image_size=16)
    assert chat.max_positions == 128
    prompt = ["Q: is it a red circle?\nA:", images[0], "Q: and this?"]
    assert chat.count_positions(prompt) == context_embeds(pipe.model, prompt).shape[0]
    chat.ask("there is a red circle at the top left " * 30)
    for i in range(8):
        reply = chat.ask(np.zeros((40, 24, 4), np.uint8), "is it a big blue square in the middle?")
    assert reply.images and sum(isinstance(x, Reply) for x in chat.history) < 9


def test_chat_widget_shows_errors_and_goes_on_and_enter_sends():
    from gill_lite.widgets import ChatWidget

    pipe = FakePipeline(p_ret=0.7, emits=False, text="yes.")
    widget = ChatWidget(GillChat(pipe, force_image=True))
    assert widget.force.value is True  # the box starts at the chat's (the notebook's FORCE_IMAGE)
    assert ChatWidget(GillChat(pipe), force_image=True).force.value is True
    broken = pipe.decode
    pipe.decode = lambda *args, **kwargs: (_ for _ in ()).throw(IndexError("index out of range in self"))
    widget.text.value = "is it red?"
    widget.button.click()  # the real handler: must not raise
    assert widget.transcript[-1][0] == "error" and "IndexError: index out of range" in widget.transcript[-1][1]
    assert widget.chat.history == [] and widget.status.value == "" and widget.text.value == "is it red?"
    pipe.decode = broken
    widget.text._handle_string_msg(None, {"event": "submit"}, None)  # what the front end sends on Enter
    assert [t[0] for t in widget.transcript[-2:]] == ["user", "GILL"] and widget.text.value == ""
    assert len(widget.chat.history) == 2


def test_chat_widget_says_when_the_window_cut_the_conversation():
    from gill_lite.widgets import ChatWidget

    pipe = FakePipeline(p_ret=0.1, emits=False, text="ok.")
    widget = ChatWidget(GillChat(pipe, max_positions=40, max_new_tokens=5, count_positions=words_and_images))
    widget.send("is it a red circle at the top?")
    widget.send("word " * 50 + "and now?")
    notes = [c.value for c in widget.log.children if hasattr(c, "value")]
    assert any("oldest 1 turn dropped" in n and "first words dropped" in n and "40 positions" in n for n in notes)


def test_chat_widget_takes_the_pipeline_itself():
    from gill_lite.widgets import ChatWidget

    pipe = FakePipeline(p_ret=0.2)
    widget = ChatWidget(pipe, seed=3, force_image=True)
    assert isinstance(widget.chat, GillChat) and widget.chat.pipe is pipe
    assert widget.chat.seed == 3 and widget.chat.force_image and widget.force.value
    reply = widget.send("draw a blue square")
    assert reply.images[0].source == "generated" and ("generate", "states", 3) in pipe.calls

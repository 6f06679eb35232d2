"""The conversation API: the decision picks retrieve or generate, and only that path runs."""
import numpy as np
import pytest

from gill_lite.chat import GillChat, Reply, dialogue_prompt


class FakeRunner:
    def __init__(self, p_ret, emits=True, text="here it is"):
        self.p_ret, self.emits, self.text = p_ret, emits, text
        self.calls = []

    def decode(self, context, max_new_tokens):
        self.calls.append(("decode", context))
        return self.text, ("states" if self.emits else None)

    def img_states(self, context):
        self.calls.append(("img_states", context))
        return "states"

    def decide(self, states):
        self.calls.append(("decide", states))
        return 1 - self.p_ret, self.p_ret

    def retrieve(self, states, k):
        self.calls.append(("retrieve", states, k))
        return [(np.full((4, 4, 3), 1, np.uint8), 0.9)]

    def generate(self, states, seed):
        self.calls.append(("generate", states, seed))
        return np.full((len(states), 4, 4, 3), 2, np.uint8)

    def names(self):
        return [c[0] for c in self.calls]


def test_retrieve_when_the_decision_says_retrieve_and_never_runs_the_generator():
    runner = FakeRunner(p_ret=0.8)
    reply = GillChat(runner=runner).respond(["show me a red circle"])
    assert reply.text == "here it is" and reply.emitted_img
    assert len(reply.images) == 1
    image, source, probs = reply.images[0]
    assert source == "retrieved" and (image == 1).all()
    assert probs == pytest.approx({"generate": 0.2, "retrieve": 0.8})
    assert "generate" not in runner.names()
    assert runner.names() == ["decode", "decide", "retrieve"]  # the emitted states are used as they are


def test_generate_otherwise_and_never_retrieves():
    runner = FakeRunner(p_ret=0.3)
    reply = GillChat(runner=runner, seed=5).respond(["draw a blue square"])
    assert reply.images[0].source == "generated" and (reply.images[0].image == 2).all()
    assert "retrieve" not in runner.names()
    assert ("generate", ["states"], 5) in runner.calls


def test_no_image_when_the_model_does_not_emit_img_unless_forced():
    runner = FakeRunner(p_ret=0.9, emits=False, text="it is red.")
    chat = GillChat(runner=runner)
    reply = chat.respond(["what colour is it?"])
    assert reply.images == [] and runner.names() == ["decode"]
    reply = chat.respond(["what colour is it?"], force_image=True)
    assert reply.images[0].source == "retrieved"
    # the [IMG] states are read after the model's own words
    assert runner.calls[2] == ("img_states", ["Q: what colour is it?\nA: it is red."])


def test_prompt_is_in_the_papers_dialogue_format():
    img = np.zeros((4, 4, 3), np.uint8)
    prompt = dialogue_prompt([img, "what is this?", Reply("a red circle."), "Q: and now?"])
    assert prompt[0] is not None and not isinstance(prompt[0], str)
    assert prompt[1] == "Q: what is this?\nA: a red circle.\nQ: and now?\nA:"
    assert dialogue_prompt(["hi"]) == ["Q: hi\nA:"]


def test_ask_keeps_the_conversation():
    runner = FakeRunner(p_ret=0.1, emits=False, text="yes.")
    chat = GillChat(runner=runner)
    chat.ask("is it red?")
    chat.ask("is it big?")
    assert runner.calls[-1] == ("decode", ["Q: is it red?\nA: yes.\nQ: is it big?\nA:"])
    assert len(chat.history) == 4
    chat.reset()
    assert chat.history == []
    with pytest.raises(ValueError):
        chat.ask()


def test_chat_widget_runs_headless_and_renders_each_turn():
    from gill_lite.widgets import ChatWidget

    runner = FakeRunner(p_ret=0.7)
    picker = {"red circle": np.full((8, 8, 3), 200, np.uint8)}
    widget = ChatWidget(GillChat(runner=runner), picker_images=picker)
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
    first = runner.calls[0][1]
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

"""`genkit serve` as a user runs it: OpenAI's own client against it, and a stop that loses nothing."""

import json
import threading
import urllib.request

import pytest

from tests.cli.genkit_server import genkit_server
from tests.helpers import wait_for


@pytest.mark.slow
def test_openai_client_gets_completions_streamed_and_not(tmp_path, tiny_gpt_checkpoint):
    openai = pytest.importorskip("openai", reason="the openai client is a dev dependency (pip install -e '.[dev]')")
    with genkit_server(tiny_gpt_checkpoint, tmp_path) as server:
        client = openai.OpenAI(base_url=server.url + "v1", api_key="unused", max_retries=0)
        whole = client.completions.create(model="tiny", prompt="line", max_tokens=6, seed=7, n=2)
        assert len(whole.choices) == 2 and whole.usage.completion_tokens == 12
        chunks = list(client.completions.create(model="tiny", prompt="line", max_tokens=6, seed=7, n=2, stream=True))
        for i, choice in enumerate(whole.choices):
            assert "".join(c.choices[0].text for c in chunks if c.choices[0].index == i) == choice.text
        with pytest.raises(openai.BadRequestError, match="max_tokens"):
            client.completions.create(model="tiny", prompt="line", max_tokens=1000)
        assert client.models.list().data[0].id == "lm-text"  # the run's run_name
        assert server.stop() == 0


@pytest.mark.slow
def test_openai_client_gets_chat_answers_streamed_and_not(tmp_path):
    """/v1/chat/completions answers the prompt the run's chat template makes of the messages: the
    same text as a completion of that prompt, with the same seed."""
    from genkit.commands.train import train
    from tests.helpers import make_cfg, tiny_text_run

    openai = pytest.importorskip("openai", reason="the openai client is a dev dependency (pip install -e '.[dev]')")
    # a context that holds the chat's prompt (37 tokens) and an answer
    train(make_cfg(tmp_path, *tiny_text_run(tmp_path), "data.block_size=48", "trainer.max_steps=2",
                   "trainer.max_epochs=1"))  # fmt: skip
    checkpoint = tmp_path / "outputs" / "run" / "checkpoints" / "last.ckpt"
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    with genkit_server(checkpoint, tmp_path) as server:
        client = openai.OpenAI(base_url=server.url + "v1", api_key="unused", max_retries=0)
        whole = client.chat.completions.create(model="tiny", messages=messages, max_tokens=4, seed=7, n=2)
        assert [c.message.role for c in whole.choices] == ["assistant", "assistant"]
        assert whole.object == "chat.completion" and whole.usage.prompt_tokens > 0
        chunks = list(client.chat.completions.create(model="tiny", messages=messages, max_tokens=4, seed=7, n=2,
                                                     stream=True))  # fmt: skip
        for i, choice in enumerate(whole.choices):
            streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices[0].index == i)
            assert streamed == choice.message.content
        # genkit's template: "<role>: <content>" lines, then "assistant:"; the answer after its space
        plain = client.completions.create(model="tiny", prompt="system: be brief\nuser: hi\nassistant:", max_tokens=4,
                                          seed=7, n=2)  # fmt: skip
        for ours, theirs in zip(whole.choices, plain.choices, strict=True):
            assert ours.message.content == theirs.text.removeprefix(" ") or ours.finish_reason == "stop"
        assert server.stop() == 0


@pytest.mark.slow
def test_sigterm_finishes_the_request_in_flight_and_exits_0(tmp_path, tiny_gpt_checkpoint):
    # a 3 s batching window holds the request in the server while SIGTERM arrives
    with genkit_server(tiny_gpt_checkpoint, tmp_path, "batch_window_ms=3000") as server:
        answers = []

        def ask() -> None:
            body = json.dumps({"prompt": "line", "max_tokens": 4}).encode()
            request = urllib.request.Request(server.url + "v1/completions", body, {"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=60) as response:
                answers.append((response.status, json.loads(response.read())))

        asking = threading.Thread(target=ask)
        asking.start()

        def held() -> bool:
            """The server holds the request (queued counts it in the batching window), or it was answered:
            either way SIGTERM comes after it arrived, however slowly this machine runs the thread."""
            health = json.loads(urllib.request.urlopen(server.url + "health", timeout=10).read())
            return health["queued"] > 0 or health["busy"] or not asking.is_alive()

        assert wait_for(held, timeout=120, interval=0.01)  # the timeout only bounds a failure
        assert server.stop() == 0, "".join(server.log)[-3000:]
        asking.join(timeout=60)
        assert answers and answers[0][0] == 200 and answers[0][1]["choices"][0]["finish_reason"] == "length"
        assert "Traceback" not in "".join(server.log)


@pytest.mark.slow
def test_load_script_prints_its_table(tmp_path, tiny_gpt_checkpoint):
    import subprocess
    import sys

    from tests.helpers import REPO

    out = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "serve_load.py"), "--ckpt", str(tiny_gpt_checkpoint),
         "--clients", "1,2", "--seconds", "1", "--body", '{"prompt": "line", "max_tokens": 4}'],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert "| clients | requests/s |" in out.stdout and "\n| 2 |" in out.stdout
    assert "genkit serve exited 0 on SIGTERM" in out.stderr

"""The HTTP app on the tiny checkpoints (in process): answers, refusals that name the field, the key."""

import base64
import json

import pytest
from fastapi.testclient import TestClient

from genkit.serving.app import Settings, build_app

LIMITS = {"max_n": 4, "max_tokens": 12, "max_steps": 3}


def client_for(run, **settings) -> TestClient:
    model, data, _ = run
    app = build_app(model, data, Settings(model_id="tiny", limits=LIMITS, **{"max_body_bytes": 2000, **settings}))
    return TestClient(app)


@pytest.fixture(scope="module")
def text_client(tiny_gpt):
    with client_for(tiny_gpt) as client:
        yield client


@pytest.fixture(scope="module")
def image_client(tiny_cdiffusion):
    with client_for(tiny_cdiffusion) as client:
        yield client


# (endpoint, body, status, the field named) — sent in turn; the server answers a good request after them
BAD_REQUESTS = [
    ("/v1/completions", {"prompt": "line", "max_tokens": 13}, 400, "max_tokens"),
    ("/v1/completions", {"prompt": "line", "max_tokens": 0}, 400, "max_tokens"),
    ("/v1/completions", {"prompt": "line", "max_tokens": "many"}, 400, "max_tokens"),
    # a completion may slide past the context, but a prompt scored token by token must fit it
    (
        "/v1/completions",
        {"prompt": "line 1 of a small corpus " * 4, "echo": True, "logprobs": 1, "max_tokens": 0},
        400,
        "prompt",
    ),
    ("/v1/completions", {"prompt": "line", "n": 5}, 400, "n"),
    ("/v1/completions", {"prompt": "line", "temperature": -1}, 400, "temperature"),
    # json.dumps writes these as Infinity / NaN, which Python's JSON (and so the server) reads back
    ("/v1/completions", {"prompt": "line", "temperature": float("inf")}, 400, "temperature"),
    ("/v1/completions", {"prompt": "line", "temperature": float("nan")}, 400, "temperature"),
    ("/v1/completions", '{"prompt": "line", "temperature": 1e999}', 400, "temperature"),  # a float that is inf
    ("/v1/completions", '{"prompt": "line", "temperature": 1' + "0" * 400 + "}", 400, "temperature"),
    ("/v1/completions", {"prompt": "line", "top_p": float("inf")}, 400, "top_p"),
    # a lone surrogate (JSON "\ud800"): no character, in any text field, or a field's name
    ("/v1/completions", {"prompt": "\ud800"}, 400, "prompt"),
    ("/v1/completions", {"prompt": "a line \udc00 of text"}, 400, "prompt"),
    ("/v1/completions", {"prompt": "line", "stop": "\ud800"}, 400, "stop"),
    ("/v1/completions", {"prompt": "line", "stop": ["ok", "\udfff"]}, 400, "stop"),
    ("/v1/completions", {"prompt": "line", "model": "\ud800"}, 400, "model"),
    ("/v1/completions", {"prompt": "line", "user": "\ud800"}, 400, "user"),
    ("/v1/completions", {"prompt": "line", "\ud800": 1}, 400, "body"),
    ("/v1/completions", {"prompt": "line", "stream_options": {"\ud800": True}}, 400, "stream_options"),
    ("/v1/completions", {"prompt": "line", "top_p": 0}, 400, "top_p"),
    ("/v1/completions", {"prompt": "line", "top_k": 0}, 400, "top_k"),
    ("/v1/completions", {"prompt": "line", "stop": ["a", "b", "c", "d", "e"]}, 400, "stop"),
    ("/v1/completions", {"prompt": "line", "seed": -3}, 400, "seed"),
    ("/v1/completions", {"prompt": "line", "stream": "yes"}, 400, "stream"),
    ("/v1/completions", {"prompt": "line", "echo": "yes"}, 400, "echo"),
    ("/v1/completions", {"prompt": "line", "logprobs": 6}, 400, "logprobs"),
    ("/v1/completions", {"prompt": "line", "logprobs": -1}, 400, "logprobs"),
    ("/v1/completions", {"prompt": "line", "logprobs": True}, 400, "logprobs"),
    ("/v1/completions", {"prompt": "line", "max_tokens": 0}, 400, "max_tokens"),
    ("/v1/completions", {"prompt": "line", "echo": True, "logprobs": 1, "stream": True}, 400, "stream"),
    ("/v1/completions", {"prompt": ["line", "line 2"], "stream": True}, 400, "stream"),
    ("/v1/completions", {"prompt": ["line", 3]}, 400, "prompt"),
    ("/v1/completions", {"prompt": []}, 400, "prompt"),
    ("/v1/completions", {"prompt": [[1, 2], []]}, 400, "prompt"),
    ("/v1/completions", {"prompt": [1, -2]}, 400, "prompt"),
    ("/v1/completions", {"prompt": [1, 99999]}, 400, "prompt"),
    ("/v1/completions", {"prompt": ["a", "b", "c"], "n": 2}, 400, "prompt"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "echo": True}, 400, "echo"),
    ("/v1/completions", [1, 2], 400, "body"),
    ("/v1/completions", "{not json", 400, "body"),
    ("/v1/completions", {"prompt": "x" * 3000}, 413, "body"),
    ("/v1/chat/completions", {}, 400, "messages"),
    ("/v1/chat/completions", {"messages": "hi"}, 400, "messages"),
    ("/v1/chat/completions", {"messages": []}, 400, "messages"),
    ("/v1/chat/completions", {"messages": [{"role": "user"}]}, 400, "messages"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": 3}]}, 400, "messages"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, 400, "messages"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "\ud800"}]}, 400, "messages"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "prompt": "x"}, 400, "prompt"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}, 400, "max_tokens"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "n": 5}, 400, "n"),
    ("/v1/images", {"n": 1}, 404, None),
    ("/v2/nothing", {}, 404, None),
]


@pytest.mark.parametrize("path,body,status,param", BAD_REQUESTS, ids=[f"{c[0]} {str(c[1])[:40]}" for c in BAD_REQUESTS])
def test_bad_text_request_is_refused_by_name(text_client, path, body, status, param):
    payload = body if isinstance(body, str) else json.dumps(body)
    response = text_client.post(path, content=payload, headers={"Content-Type": "application/json"})
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["param"] == param and error["message"]
    if param not in (None, "body"):
        assert param in error["message"]


def test_server_answers_after_bad_requests(text_client):
    for path, body, _, _ in BAD_REQUESTS:
        text_client.post(path, content=body if isinstance(body, str) else json.dumps(body))
    answer = text_client.post("/v1/completions", json={"prompt": "line", "max_tokens": 5, "n": 2, "seed": 1}).json()
    assert [c["finish_reason"] for c in answer["choices"]] == ["length", "length"]
    assert answer["usage"]["completion_tokens"] == 10 and answer["object"] == "text_completion"
    again = text_client.post("/v1/completions", json={"prompt": "line", "max_tokens": 5, "n": 2, "seed": 1}).json()
    assert [c["text"] for c in again["choices"]] == [c["text"] for c in answer["choices"]]


def test_completion_streams_as_server_sent_events(text_client):
    with text_client.stream("POST", "/v1/completions", json={"prompt": "line", "max_tokens": 6, "seed": 2,
                                                             "stream": True}) as response:  # fmt: skip
        events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    whole = text_client.post("/v1/completions", json={"prompt": "line", "max_tokens": 6, "seed": 2}).json()
    assert "".join(c["choices"][0]["text"] for c in chunks) == whole["choices"][0]["text"]
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


def test_lone_surrogate_is_refused_in_json_that_names_it(text_client):
    """Today's 500 in plain text: the refusal is JSON, says which half-pair it found and how to send text."""
    response = text_client.post("/v1/completions", content=b'{"prompt": "caf\\ud800"}',
                                headers={"Content-Type": "application/json"})  # fmt: skip
    assert response.status_code == 400 and response.headers["content-type"] == "application/json"
    message = response.json()["error"]["message"]
    assert "\\ud800" in message and "surrogate" in message and "UTF-8" in message, message
    assert "\n" not in message


def test_json_nested_past_the_parser_is_refused(tiny_gpt):
    """Python's JSON reader recurses: 20000 open brackets (within the default body limit) ran it out."""
    with client_for(tiny_gpt, max_body_bytes=65536) as client:
        response = client.post("/v1/completions", content="[" * 20000 + "]" * 20000)
        assert response.status_code == 400 and response.json()["error"]["param"] == "body", response.text


def test_text_beyond_the_basic_plane_is_answered(text_client):
    """A whole surrogate pair is one character (U+1F600): answered, like the same text sent as UTF-8."""
    for body in (b'{"prompt": "line \\ud83d\\ude00", "max_tokens": 3, "seed": 1}',
                 '{"prompt": "line \U0001f600", "max_tokens": 3, "seed": 1}'.encode()):  # fmt: skip
        response = text_client.post("/v1/completions", content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 200, response.text
        assert response.json()["usage"]["completion_tokens"] == 3


def test_temperature_inf_is_refused_and_says_finite(text_client):
    response = text_client.post("/v1/completions", content=b'{"prompt": "line", "temperature": Infinity}')
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "temperature" and "temperature=inf" in error["message"]
    assert "finite number of at least 0" in error["message"], error
    about = text_client.get("/v1/models").json()["data"][0]["options"]["temperature"]
    assert about["must_be"] == "a finite number of at least 0"


def test_a_server_fault_is_a_json_500_and_the_server_goes_on(tiny_gpt, monkeypatch):
    """Whatever fails inside a handler (here a bug stood in by a ValueError) is OpenAI's error shape."""
    import genkit.serving.text

    def broken(*args, **kwargs):
        raise ValueError("a bug")

    with TestClient(build_app(tiny_gpt[0], tiny_gpt[1], Settings(model_id="tiny", limits=LIMITS)),
                    raise_server_exceptions=False) as client:  # fmt: skip
        monkeypatch.setattr(genkit.serving.text, "sample_inputs", broken)
        response = client.post("/v1/completions", json={"prompt": "line"})
        assert response.status_code == 500 and response.headers["content-type"] == "application/json"
        assert response.json()["error"]["type"] == "server_error"
        assert "ValueError" in response.json()["error"]["message"]
        monkeypatch.undo()
        assert client.post("/v1/completions", json={"prompt": "line", "max_tokens": 2}).status_code == 200


def test_models_and_health_describe_the_run(text_client):
    model = text_client.get("/v1/models").json()["data"][0]
    assert model["family"] == "LanguageModel" and model["endpoint"] == "/v1/completions" and model["vocab_size"] > 0
    assert model["options"]["max_tokens"]["max"] == 12 and "temperature" in model["options"]
    assert text_client.get("/health").json()["status"] == "ok"
    assert '<form id="text-form"' in text_client.get("/").text


BAD_IMAGE_REQUESTS = [
    ({"n": 5}, "n"),
    ({"steps": 4}, "steps"),
    ({"steps": 0}, "steps"),
    ({"label": 11}, "label"),
    ({"label": "sneaker"}, "label"),
    ({"labels": [3, 12]}, "labels"),
    ({"label": 3, "labels": [1, 2]}, "label"),
    ({"guidance": -1}, "guidance"),
    ({"n": 2, "response_format": "png"}, "n"),
    ({"response_format": "gif"}, "response_format"),
    ({"prompt": "a seven"}, "prompt"),
    ({"label": "\ud800"}, "label"),
    ({"labels": ["3", "\udc00"]}, "labels"),
    ({"guidance": float("inf")}, "guidance"),
    ({"eta": float("inf")}, "eta"),
]


def test_bad_image_requests_then_a_good_one(image_client):
    for body, param in BAD_IMAGE_REQUESTS:
        # json.dumps escapes a lone surrogate as \\ud800, as a client's JSON would (httpx's json= cannot send it)
        response = image_client.post(
            "/v1/images", content=json.dumps(body), headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 400 and response.json()["error"]["param"] == param, (body, response.text)
    answer = image_client.post("/v1/images", json={"n": 3, "labels": [7, 2], "seed": 0, "steps": 2}).json()
    assert [d["label"] for d in answer["data"]] == [7, 7, 2]
    assert all(base64.b64decode(d["b64_json"]).startswith(b"\x89PNG") for d in answer["data"])
    png = image_client.post("/v1/images", json={"label": "3", "seed": 0, "response_format": "png"})
    assert png.headers["content-type"] == "image/png" and png.content.startswith(b"\x89PNG")
    about = image_client.get("/v1/models").json()["data"][0]
    assert about["classes"] == [str(i) for i in range(10)] and about["options"]["steps"]["max"] == 3


def test_api_key_is_asked_of_every_call_but_the_page(tiny_gpt):
    with client_for(tiny_gpt, api_key="s3cret") as client:
        assert client.get("/health").status_code == 401
        assert client.get("/metrics").status_code == 401
        refused = client.post("/v1/completions", json={"prompt": "line"})
        assert refused.status_code == 401 and refused.json()["error"]["param"] == "api_key"
        assert client.get("/health", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert client.post("/v1/completions", json={"prompt": "line", "max_tokens": 2},
                           headers={"X-API-Key": "s3cret"}).status_code == 200  # fmt: skip
        assert client.get("/").status_code == 200


def test_metrics_count_requests_by_route_and_status_in_prometheus_format(tiny_gpt):
    from prometheus_client.parser import text_string_to_metric_families

    with client_for(tiny_gpt) as client:
        for _ in range(2):
            assert client.post("/v1/completions", json={"prompt": "line", "max_tokens": 2}).status_code == 200
        assert client.post("/v1/completions", json={"max_tokens": -1}).status_code == 400
        for path in ("/health", "/wp-login.php", "/.env"):
            client.get(path)
        answer = client.get("/metrics")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(answer.text) for s in family.samples}  # fmt: skip
    assert samples[("genkit_requests_total", (("route", "/v1/completions"), ("status", "200")))] == 2
    assert samples[("genkit_requests_total", (("route", "/v1/completions"), ("status", "400")))] == 1
    assert samples[("genkit_requests_total", (("route", "/health"), ("status", "200")))] == 1
    # paths that are no route share one series: a scanner cannot grow the set
    assert samples[("genkit_requests_total", (("route", "other"), ("status", "404")))] == 2
    assert samples[("genkit_request_seconds_count", (("route", "/v1/completions"),))] == 3
    assert samples[("genkit_queued_requests", ())] == 0 and samples[("genkit_batch_running", ())] == 0
    # two answers of 2 tokens, each after its prompt "line" with the start token; one row a step
    assert samples[("genkit_completion_tokens_total", ())] == 4
    assert samples[("genkit_prompt_tokens_total", ())] == 2 * len(tiny_gpt[1].prompt_ids("line"))
    rows_seen = samples[("genkit_batch_rows_bucket", (("le", "1.0"),))]
    assert samples[("genkit_batch_rows_count", ())] >= 2 and rows_seen >= 2


def test_request_over_the_time_limit_is_408_and_the_server_goes_on(tiny_gpt, monkeypatch):
    import threading

    from genkit.serving.text_runner import TextRunner

    # the model thread is held until the 408 has come back: nothing here depends on timing
    released, step = threading.Event(), TextRunner.step
    monkeypatch.setattr(TextRunner, "step", lambda self, joining: released.wait() and step(self, joining))
    with client_for(tiny_gpt, timeout_s=0.001) as client:
        late = client.post("/v1/completions", json={"prompt": "line", "max_tokens": 2})
        released.set()
        assert late.status_code == 408 and late.json()["error"]["param"] == "timeout"
        assert "0.001 s" in late.json()["error"]["message"]
        assert client.get("/health").json()["status"] == "ok"


def test_echo_with_logprobs_scores_the_prompt_as_the_model_does(text_client, tiny_gpt):
    """max_tokens=0 with echo: the prompt back, each token's log-probability after the tokens
    before it (genkit's start token first), its top alternatives; what evaluation harnesses read."""
    import torch

    model, data, _ = tiny_gpt
    ids = data.prompt_ids("line 3 of a")
    answer = text_client.post("/v1/completions", json={"prompt": "line 3 of a", "max_tokens": 0, "echo": True,
                                                        "logprobs": 2}).json()  # fmt: skip
    choice = answer["choices"][0]
    assert choice["text"] == "line 3 of a" and choice["finish_reason"] == "length"
    logprobs = choice["logprobs"]
    assert "".join(logprobs["tokens"]) == "line 3 of a" and len(logprobs["tokens"]) == len(ids) - 1
    with torch.no_grad():
        expected = model(torch.tensor([ids])).float().log_softmax(-1)[0, :-1].gather(1, torch.tensor(ids[1:])[:, None])
    assert logprobs["token_logprobs"] == pytest.approx(expected[:, 0].tolist(), abs=1e-4)
    assert all(len(top) == 2 and max(top.values()) >= lp - 1e-6
               for top, lp in zip(logprobs["top_logprobs"], logprobs["token_logprobs"], strict=True))  # fmt: skip
    assert logprobs["text_offset"][0] == 0 and answer["usage"]["completion_tokens"] == 0
    # token ids for a prompt: the same tokens after the start token, the same scores
    by_ids = text_client.post("/v1/completions", json={"prompt": ids[1:], "max_tokens": 0, "echo": True,
                                                        "logprobs": 0}).json()  # fmt: skip
    assert by_ids["choices"][0]["logprobs"]["token_logprobs"] == pytest.approx(logprobs["token_logprobs"], abs=1e-5)


def test_greedy_tokens_are_their_own_top_logprob_and_a_list_of_prompts_answers_each(text_client):
    answer = text_client.post("/v1/completions", json={"prompt": ["line", "line 3"], "n": 2, "max_tokens": 3,
                                                        "temperature": 0, "logprobs": 1}).json()  # fmt: skip
    assert [c["index"] for c in answer["choices"]] == [0, 1, 2, 3]
    assert answer["choices"][0]["text"] == answer["choices"][1]["text"]  # greedy: the same for both
    for choice in answer["choices"]:
        logprobs = choice["logprobs"]
        assert len(logprobs["token_logprobs"]) == 3 and "".join(logprobs["tokens"]) == choice["text"]
        for lp, top in zip(logprobs["token_logprobs"], logprobs["top_logprobs"], strict=True):
            assert lp == pytest.approx(max(top.values()))

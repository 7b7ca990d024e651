"""Contract test: the official Anthropic Python SDK against cadre-sim.

Run with CADRE_SIM_URL pointing at a running sim (e.g. http://127.0.0.1:PORT).
Works as a plain script (`python contract_test.py`, exit status 0 on success)
and under pytest (every `test_*` function is independent).
"""

import json
import os
import sys
import time
import traceback
import urllib.request

import anthropic
from anthropic.types import Message

BASE_URL = os.environ.get("CADRE_SIM_URL", "").rstrip("/")
MODEL = "claude-sonnet-4-6"  # caches prefixes of >= 2048 tokens


def client() -> anthropic.Anthropic:
    if not BASE_URL:
        raise RuntimeError("set CADRE_SIM_URL to the sim's base URL")
    return anthropic.Anthropic(base_url=BASE_URL, api_key="test", max_retries=2)


def sim_requests() -> list:
    with urllib.request.urlopen(f"{BASE_URL}/sim/requests") as resp:
        return json.load(resp)["requests"]


def test_plain_message():
    msg = client().messages.create(
        model=MODEL,
        max_tokens=256,
        messages=[{"role": "user", "content": "Hello, simulator"}],
    )
    assert isinstance(msg, Message), type(msg)
    assert msg.type == "message" and msg.role == "assistant"
    assert msg.id.startswith("msg_")
    assert msg.content[0].type == "text" and "Hello" in msg.content[0].text
    assert msg.stop_reason == "end_turn"
    assert msg.usage.input_tokens == 4  # "Hello, simulator" = 16 chars
    assert msg.usage.output_tokens > 0
    assert msg._request_id.startswith("req_")


WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather for a city.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
        "required": ["city"],
    },
}


def test_tool_use_round_trip():
    c = client()
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = c.messages.create(model=MODEL, max_tokens=512, tools=[WEATHER_TOOL], messages=messages)
    assert first.stop_reason == "tool_use"
    calls = [b for b in first.content if b.type == "tool_use"]
    assert len(calls) == 1
    call = calls[0]
    assert call.name == "get_weather" and call.id.startswith("toolu_")
    assert call.input == {"city": "sim", "unit": "celsius"}
    messages.append({"role": "assistant", "content": first.content})
    messages.append(
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "18 C and sunny"}]}
    )
    second = c.messages.create(model=MODEL, max_tokens=512, tools=[WEATHER_TOOL], messages=messages)
    assert second.stop_reason == "end_turn"
    assert "18 C and sunny" in second.content[0].text
    # A tool_result for an id the assistant never used is a 400.
    messages[-1]["content"][0]["tool_use_id"] = "toolu_unknown"
    try:
        c.messages.create(model=MODEL, max_tokens=512, tools=[WEATHER_TOOL], messages=messages)
    except anthropic.BadRequestError as e:
        assert "toolu_unknown" in str(e)
    else:
        raise AssertionError("expected a 400 for an unknown tool_use_id")


def test_count_tokens():
    count = client().messages.count_tokens(
        model=MODEL,
        system="x" * 400,
        messages=[{"role": "user", "content": "y" * 40}],
    )
    assert count.input_tokens == 110, count


def test_errors_map_to_sdk_exceptions():
    c = client()
    try:
        c.messages.create(model="claude-nope", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    except anthropic.NotFoundError as e:
        assert e.status_code == 404 and "claude-nope" in str(e)
    else:
        raise AssertionError("expected NotFoundError")
    try:
        c.messages.create(
            model="claude-haiku-4-5",
            max_tokens=100,
            output_config={"effort": "low"},
            messages=[{"role": "user", "content": "x"}],
        )
    except anthropic.BadRequestError as e:
        assert e.status_code == 400 and "effort" in str(e)
    else:
        raise AssertionError("expected BadRequestError for effort on haiku")


def test_cached_prefix_written_then_read():
    c = client()
    marker = str(time.time_ns())  # a fresh prefix, even against a long-running sim
    system = [{"type": "text", "text": (marker + " ").ljust(12000, "s"), "cache_control": {"type": "ephemeral"}}]
    first = c.messages.create(model=MODEL, max_tokens=64, system=system, messages=[{"role": "user", "content": "one"}])
    assert first.usage.cache_creation_input_tokens == 3000, first.usage
    assert first.usage.cache_read_input_tokens == 0
    assert first.usage.cache_creation.ephemeral_5m_input_tokens == 3000
    assert first.usage.cache_creation.ephemeral_1h_input_tokens == 0
    assert first.usage.input_tokens == 1
    second = c.messages.create(model=MODEL, max_tokens=64, system=system, messages=[{"role": "user", "content": "two!"}])
    assert second.usage.cache_read_input_tokens == 3000, second.usage
    assert second.usage.cache_creation_input_tokens == 0
    assert second.usage.input_tokens == 1


def test_batch_create_to_results():
    c = client()
    requests = [
        {"custom_id": f"req-{i}", "params": {"model": MODEL, "max_tokens": 64, "messages": [{"role": "user", "content": f"batch item {i}"}]}}
        for i in range(4)
    ]
    batch = c.messages.batches.create(requests=requests)
    assert batch.id.startswith("msgbatch_")
    assert batch.processing_status == "in_progress"
    assert batch.request_counts.processing == 4
    for _ in range(300):
        batch = c.messages.batches.retrieve(batch.id)
        if batch.processing_status == "ended":
            break
        time.sleep(0.05)
    assert batch.processing_status == "ended", batch
    assert batch.request_counts.succeeded == 4
    assert batch.results_url
    results = list(c.messages.batches.results(batch.id))
    assert sorted(r.custom_id for r in results) == [f"req-{i}" for i in range(4)]
    for r in results:
        assert r.result.type == "succeeded"
        assert isinstance(r.result.message, Message)
        assert f"batch item {r.custom_id.split('-')[1]}" in r.result.message.content[0].text
        assert r.result.message.usage.service_tier == "batch"
    listed = c.messages.batches.list(limit=100)
    assert any(b.id == batch.id for b in listed.data)


def test_rate_limit_is_retried_by_the_sdk():
    c = client()
    content = f"rate limited once {time.time_ns()}"
    raw = c.messages.with_raw_response.create(
        model=MODEL,
        max_tokens=64,
        messages=[{"role": "user", "content": content}],
        extra_headers={"x-sim-fault": "rate_limit", "x-sim-fault-retry-after": "1"},
    )
    msg = raw.parse()
    assert isinstance(msg, Message)
    assert raw.retries_taken == 1, raw.retries_taken
    mine = [r for r in sim_requests() if r["fault"] == "rate_limit" or r["status"] == 200]
    shas = {r["body_sha256"] for r in mine if r["fault"] == "rate_limit"}
    assert shas, "the sim saw the 429"
    retried = [r for r in mine if r["body_sha256"] in shas]
    assert [r["status"] for r in retried][-2:] == [429, 200], retried


def test_streaming():
    c = client()
    texts = []
    with c.messages.stream(
        model=MODEL, max_tokens=256, messages=[{"role": "user", "content": "Stream something"}]
    ) as stream:
        for text in stream.text_stream:
            texts.append(text)
        final = stream.get_final_message()
    assert len(texts) >= 3, texts
    assert isinstance(final, Message)
    assert final.content[0].text == "".join(texts)
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0

    # A streamed tool call: the SDK assembles the input_json_delta fragments.
    with c.messages.stream(
        model=MODEL,
        max_tokens=256,
        tools=[WEATHER_TOOL],
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
    ) as stream:
        final = stream.get_final_message()
    call = [b for b in final.content if b.type == "tool_use"][0]
    assert call.input == {"city": "sim", "unit": "celsius"}
    assert final.stop_reason == "tool_use"


def main() -> int:
    tests = [(name, fn) for name, fn in globals().items() if name.startswith("test_") and callable(fn)]
    passed = failed = 0
    for name, fn in tests:
        try:
            fn()
        except Exception:  # noqa: BLE001 - report every failure
            failed += 1
            print(f"FAIL {name}")
            traceback.print_exc()
        else:
            passed += 1
            print(f"ok   {name}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

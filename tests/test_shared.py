"""shared/: tokenizer, the committed dataset and its resolution, initial weights, CLI, results file."""

import hashlib
import json
import math

import pytest

from shared import cli, dataset, log, results
from shared.environment import environment
from shared.errors import UserError
from shared.tokenizer import Tokenizer
from shared.weights import GPTConfig, init_run, param_offsets, param_shapes

# ---------------------------------------------------------------------------- tokenizer


def test_tokenizer_matches_spec_on_names(names_docs):
    tok = Tokenizer.from_docs(names_docs)
    assert tok.chars == tuple("abcdefghijklmnopqrstuvwxyz")
    assert tok.bos == 26 and tok.vocab_size == 27
    assert tok.encode_doc("emma") == [26, 4, 12, 12, 0, 26]


def test_tokenizer_round_trip(names_docs):
    tok = Tokenizer.from_docs(names_docs)
    for doc in names_docs[:500]:
        assert tok.decode(tok.encode_doc(doc)) == doc


def test_tokenizer_rejects_unknown_character():
    tok = Tokenizer.from_docs(["abc"])
    with pytest.raises(UserError, match="'z'.*not in the vocabulary"):
        tok.encode("abz")


# ---------------------------------------------------------------------------- dataset


def test_load_docs_strips_and_skips_blank_lines(tmp_path):
    path = tmp_path / "n.txt"
    path.write_text("  anna \n\n\t\nbob\n   \n")
    assert dataset.load_docs(path) == ["anna", "bob"]


@pytest.mark.parametrize("content, message", [
    (b"", "no non-empty lines"),
    (b"\n  \n\t\n", "no non-empty lines"),
    (b"anna\n\xff\xfe\n", "line 2 is not valid UTF-8"),
])
def test_load_docs_bad_files(tmp_path, content, message):
    path = tmp_path / "n.txt"
    path.write_bytes(content)
    with pytest.raises(UserError, match=message):
        dataset.load_docs(path)


def test_load_docs_missing_file(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        dataset.load_docs(tmp_path / "nope.txt")


def test_committed_names_file_is_makemores():
    """data/names.txt is makemore's file byte for byte: the first command needs no network."""
    assert hashlib.sha256(dataset.NAMES_PATH.read_bytes()).hexdigest() == dataset.NAMES_SHA256
    assert len(dataset.load_docs(dataset.NAMES_PATH)) == 32033


def test_resolution_order(tmp_path, monkeypatch):
    monkeypatch.setenv(dataset.ENV_VAR, str(tmp_path / "env.txt"))
    # 1. an explicit path wins over everything
    assert dataset.resolve_data_path(tmp_path / "arg.txt") == tmp_path / "arg.txt"
    # 2. then the environment variable
    assert dataset.resolve_data_path(None) == tmp_path / "env.txt"
    # 3. then the committed file
    monkeypatch.delenv(dataset.ENV_VAR)
    assert dataset.resolve_data_path(None) == dataset.NAMES_PATH


def test_missing_committed_file_says_how_to_restore_it(tmp_path, monkeypatch):
    monkeypatch.setattr(dataset, "NAMES_PATH", tmp_path / "data" / "names.txt")
    monkeypatch.delenv(dataset.ENV_VAR, raising=False)
    with pytest.raises(UserError) as err:
        dataset.resolve_data_path(None)
    message = str(err.value)
    assert "\n" not in message
    for way in ("git checkout -- data/names.txt", "--data PATH", "MICROGPT_DATA=PATH"):
        assert way in message


def test_step_documents_follow_spec_order_and_wrap_around():
    docs = ["a", "b", "c", "d", "e"]
    assert dataset.step_documents(docs, 0) == ["a"] and dataset.step_documents(docs, 7) == ["c"]  # B = 1: microgpt
    assert dataset.step_documents(docs, 1, 2) == ["c", "d"]
    assert dataset.step_documents(docs, 2, 2) == ["e", "a"]  # wraps at the end of the list
    assert dataset.step_documents(docs, 0, 7) == ["a", "b", "c", "d", "e", "a", "b"]  # larger than the list


# ---------------------------------------------------------------------------- weights


def test_param_count_and_order():
    config = GPTConfig()
    assert sum(rows * cols for _, (rows, cols) in param_shapes(config)) == 4192
    names = [name for name, _ in param_shapes(config)]
    assert names == ["wte", "wpe", "lm_head", "layer0.attn_wq", "layer0.attn_wk",
                     "layer0.attn_wv", "layer0.attn_wo", "layer0.mlp_fc1", "layer0.mlp_fc2"]


def test_init_run_follows_one_random_stream(names_docs):
    """shuffle, then gauss draws row-major, from random.Random(seed): microgpt's order."""
    import random

    config = GPTConfig()
    docs, state, rng = init_run(names_docs, config, seed=42)
    ref = random.Random(42)
    ref_docs = list(names_docs)
    ref.shuffle(ref_docs)
    assert docs == ref_docs and docs != names_docs
    assert state["wte"][0][0] == ref.gauss(0, 0.08)
    assert state["wte"][0][1] == ref.gauss(0, 0.08)
    # the generator handed back continues right after the last parameter draw
    for _ in range(4192 - 2):
        ref.gauss(0, 0.08)
    assert rng.random() == ref.random()
    assert (len(state["layer0.mlp_fc1"]), len(state["layer0.mlp_fc1"][0])) == (64, 16)


def test_param_offsets_tile_one_flat_buffer():
    config = GPTConfig(n_layer=2)
    offsets = param_offsets(config)
    spans = sorted((start, start + rows * cols) for name, (start, rows, cols) in offsets.items() if "wqkv" not in name)
    assert spans[0][0] == 0 and all(a[1] == b[0] for a, b in zip(spans, spans[1:]))  # no gap, no overlap
    for i in range(2):  # the stacked q, k, v matrix starts at wq and spans wq, wk, wv
        start, rows, cols = offsets[f"layer{i}.attn_wqkv"]
        assert (start, rows * cols) == (offsets[f"layer{i}.attn_wq"][0], 3 * 16 * 16)
        assert offsets[f"layer{i}.attn_wv"][0] + 16 * 16 == start + rows * cols


# ---------------------------------------------------------------------------- cli


def _parse(tmp_path, *argv):
    parser = cli.build_parser("test", tmp_path)
    return cli.parse_args(parser, list(argv))


def test_cli_defaults_follow_spec(tmp_path):
    args = _parse(tmp_path)
    assert (args.steps, args.seed, args.samples, args.temperature) == (1000, 42, 20, 0.5)
    assert (args.n_layer, args.n_embd, args.n_head, args.block_size) == (1, 16, 4, 16)


@pytest.mark.parametrize("argv, message", [
    (["--steps", "0"], "--steps must be positive"),
    (["--n-embd", "10", "--n-head", "4"], "not divisible"),
    (["--temperature", "0"], "--temperature must be at least 0.001"),
    (["--samples", "-1"], "--samples must be zero or more"),
])
def test_cli_usage_errors_exit_2(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        _parse(tmp_path, *argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_cli_rejects_unwritable_out_before_training(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        _parse(tmp_path, "--out", str(tmp_path / "missing" / "r.json"))
    with pytest.raises(UserError, match="is a directory"):
        _parse(tmp_path, "--out", str(tmp_path))


# ---------------------------------------------------------------------------- results


def test_log_line_format():
    assert log.log_line(1, 1000, 3.36601, 52.314) == "step    1 / 1000 | loss 3.3660 | 52.31 ms"


def test_throughput_is_names_and_tokens_per_second_at_the_median_step():
    res = {"config": {"batch_size": 4}, "step_ms": [100.0] * 10 + [2.0, 2.0, 4.0], "doc_len": [20] * 12 + [26]}
    names, tokens = results.throughput(res)
    assert names == 4 * 1000 / 2.0 and tokens == pytest.approx((20 + 20 + 26) / 3 * 1000 / 2.0)  # after warm-up
    assert results.throughput({"config": {}, "step_ms": [5.0]})[0] == 200.0  # files without batch_size: B = 1


def test_summaries():
    step_ms = [100.0] * 10 + [1.0, 2.0, 3.0]
    assert results.median_step_ms(step_ms) == 2.0  # warm-up steps excluded
    assert results.median_step_ms([5.0, 7.0]) == 6.0  # short run: all steps
    losses = [10.0] * 50 + [2.0] * 100
    assert results.final_loss(losses) == 2.0


def test_training_run_writes_spec_shape(tmp_path, capsys):
    out = tmp_path / "r.json"
    run = results.TrainingRun("x", {"steps": 2}, 7, out, environment("cpu"))
    with run:
        run.record(3.0, 0.010, doc_len=5)
        run.record(2.0, 0.020, doc_len=6)
    run.finish(["anna"])
    data = json.loads(out.read_text())
    assert set(data) >= {"stage", "config", "num_params", "losses", "step_ms", "total_s",
                         "samples", "env"}
    assert data["losses"] == [3.0, 2.0] and data["step_ms"] == [10.0, 20.0]
    assert data["doc_len"] == [5, 6] and "partial" not in data
    assert {"python", "numpy", "torch", "triton", "device", "cpu", "interpreter", "date"} <= set(data["env"])
    assert "step    2 /    2 | loss 2.0000 | 20.00 ms" in capsys.readouterr().out


def test_record_steps_shares_one_piece_of_work_among_its_steps(tmp_path, capsys):
    run = results.TrainingRun("x", {"steps": 4}, 7, tmp_path / "r.json", {})
    with run:
        run.record_steps([3.0, 2.5, 2.0, 1.5], 0.008, doc_len=[3, 4, 5, 6])
        # printing the log takes time; the run's total stays the work's
    assert run.total_s == 0.008 and run.step_ms == [2.0] * 4 and run.series["doc_len"] == [3, 4, 5, 6]
    assert "step    4 /    4 | loss 1.5000 | 2.00 ms" in capsys.readouterr().out


def test_training_run_stops_at_nan_and_keeps_the_steps_before(tmp_path):
    """A loss gone NaN stops the run in one line, and the steps trained before it are kept,
    marked partial, with the error (nothing a user trained is lost)."""
    out = tmp_path / "r.json"
    run = results.TrainingRun("x", {"steps": 5}, 7, out, {})
    with pytest.raises(UserError, match="loss became nan at step 2.*after 1 steps; partial results in"):
        with run:
            run.record(3.0, 0.01)
            run.record(math.nan, 0.01)
    kept = json.loads(out.read_text())
    assert kept["partial"] is True and kept["losses"] == [3.0] and "loss became nan" in kept["error"]


def test_interrupt_writes_partial_results_beside_a_complete_file(tmp_path):
    """A partial run never replaces a complete one: it goes beside it, as <name>.partial.json;
    with nothing (or a partial run) at --out, it goes there."""
    out = tmp_path / "r.json"
    out.write_text('{"old": true}')
    for expected in ("r.partial.json", "r.partial.json"):  # twice: the second replaces the first partial
        run = results.TrainingRun("x", {"steps": 5}, 7, out, {})
        with pytest.raises(KeyboardInterrupt, match="partial results in"):
            with run:
                run.record(3.0, 0.01)
                raise KeyboardInterrupt
        assert json.loads(out.read_text()) == {"old": True}
        data = json.loads((tmp_path / expected).read_text())
        assert data["partial"] is True and data["losses"] == [3.0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "r.partial.json"]  # no temporary left
    out.unlink()
    run = results.TrainingRun("x", {"steps": 5}, 7, out, {})
    with pytest.raises(KeyboardInterrupt):
        with run:
            run.record(2.5, 0.01)
            raise KeyboardInterrupt
    assert json.loads(out.read_text())["losses"] == [2.5]


def test_positions_per_step_follow_the_wrapped_batches():
    lengths = [3, 5, 2]  # real positions of three documents; batches of 5 wrap around the list
    assert dataset.positions_per_step(lengths, 3, 5) == [3 + 5 + 2 + 3 + 5, 2 + 3 + 5 + 2 + 3, 5 + 2 + 3 + 5 + 2]
    assert dataset.positions_per_step(lengths, 2, 1) == [3, 5]


def test_a_slow_run_s_rate_is_not_printed_as_zero():
    """Stage 4 in the interpreter trains a few names a second: its last line said '0 names/s'."""
    from shared.results import rate

    assert [rate(x) for x in (0.31, 4.9, 56.78, 6116.2)] == ["0.31", "4.9", "56.8", "6,116"]


def test_a_folder_on_a_full_disk_is_said_as_such(tmp_path, monkeypatch):
    """unwritable_folder (the Inductor cache's check, --compile) on a full disk: an empty file
    still fits there, one byte does not; the probe it wrote is gone. (The tests run as root, for
    whom permissions never refuse: the disk is made full by a write that fails as a full one does.)"""
    import errno
    import os

    def full(fd, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(cli.os, "write", full)
    assert cli.unwritable_folder(str(tmp_path)) == f"{tmp_path} cannot be written (No space left on device)"
    assert list(tmp_path.iterdir()) == []

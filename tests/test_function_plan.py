"""The I/O-free plan of a script call as a Redis function (``scriptforms.attempts``) and
the function libraries' text: no Redis here, the replies are made up as redis-py
parses them.  Also: every top-level state of the Lua libraries is reset per call."""

from __future__ import annotations

import re
from collections.abc import Generator
from importlib.resources import files
from typing import Any

import pytest
from redis.exceptions import NoPermissionError, NoScriptError, OutOfMemoryError, ReadOnlyError, ResponseError

from IndexedRedis import scripts
from IndexedRedis.drivers import scriptforms
from IndexedRedis.flows.requests import ScriptCall


class Pool:
    """A connection pool as far as the plan knows one: something to mark."""


NOT_FOUND = ResponseError("Function not found")
EXISTS = ResponseError("Library 'ir_0123456789abcdef' already exists")
SCRIPT_ERROR = ResponseError("user_function:300: IR_UNKNOWN_SCHEMA 7  script: ir_0123456789abcdef_save, "
                             "on @user_function:300.")


def call(script: scripts.Script = scripts.SAVE) -> ScriptCall:
    return ScriptCall(script, (b"k1", b"k2"), (b"a1",))


def run(plan: Generator[scriptforms.Step, Any, None], replies: list[Any]) -> tuple[list[scriptforms.Step], Any]:
    """The steps the plan yields when answered ``replies`` in turn (the last answer is
    what the call returns, or the error it raises)."""
    steps = [next(plan)]
    for reply in replies:
        sent, wants = steps[-1]
        if not wants and not isinstance(reply, Exception):
            return steps, reply
        try:
            steps.append(plan.send(reply))
        except ResponseError as exc:
            return steps, exc
    raise AssertionError(f"the plan wants more replies: {steps[-1]}")


def names(steps: list[scriptforms.Step]) -> list[str]:
    return [" ".join(str(word) for word in sent[:2]) if sent[0] == "FUNCTION" else str(sent[0])
            for sent, _ in steps]


def test_fcall_first_and_its_reply_is_the_answer() -> None:
    steps, answer = run(scriptforms.attempts(call(), Pool()), [[1, 2]])
    assert names(steps) == ["FCALL"] and answer == [1, 2]
    assert steps[0][0] == ("FCALL", scripts.SAVE.function_name, 2, b"k1", b"k2", b"a1")


def test_a_read_only_script_goes_by_fcall_ro() -> None:
    steps, _ = run(scriptforms.attempts(call(scripts.QUERY), Pool()), [[1]])
    assert steps[0][0][:2] == ("FCALL_RO", scripts.QUERY.function_name)
    steps, _ = run(scriptforms.attempts(call(scripts.QUERY_ON_MASTER), Pool()), [[1]])
    assert steps[0][0][:2] == ("FCALL", scripts.QUERY.function_name)  # the same no-writes function


@pytest.mark.parametrize("load_reply", ["ir_0123456789abcdef", EXISTS], ids=["loaded", "already-exists"])
def test_function_not_found_loads_the_library_then_calls_again(load_reply: Any) -> None:
    pool = Pool()
    steps, answer = run(scriptforms.attempts(call(), pool), [NOT_FOUND, load_reply, [1]])
    assert names(steps) == ["FCALL", "FUNCTION LOAD", "FCALL"] and answer == [1]
    assert steps[1] == (("FUNCTION", "LOAD", scripts.SAVE.library_source), True)  # its reply wanted
    assert scriptforms.functions_form(pool)


@pytest.mark.parametrize("refusal", [
    NoPermissionError("this user has no permissions to run the 'function|load' command"),
    ReadOnlyError("You can't write against a read only replica."),
    ResponseError("Error compiling function: user_function:1: ..."),
])
def test_a_refused_load_marks_the_pool_and_the_call_goes_by_evalsha(refusal: Exception) -> None:
    pool = Pool()
    steps, answer = run(scriptforms.attempts(call(), pool), [NOT_FOUND, refusal, [1]])
    assert names(steps) == ["FCALL", "FUNCTION LOAD", "EVALSHA"] and answer == [1]
    assert not scriptforms.functions_form(pool)
    steps, _ = run(scriptforms.attempts(call(), pool), [[1]])  # from now on: EVALSHA at once
    assert names(steps) == ["EVALSHA"]


def test_a_load_refused_at_maxmemory_goes_by_evalsha_once_without_marking() -> None:
    pool = Pool()
    oom = OutOfMemoryError("command not allowed when used memory > 'maxmemory'.")
    steps, _ = run(scriptforms.attempts(call(), pool), [NOT_FOUND, oom, NoScriptError("No matching script"), [1]])
    assert names(steps) == ["FCALL", "FUNCTION LOAD", "EVALSHA", "EVAL"]
    assert scriptforms.functions_form(pool)


@pytest.mark.parametrize("refusal", [
    NoPermissionError("this user has no permissions to run the 'fcall' command"),
    ResponseError("unknown command 'FCALL', with args beginning with: 'ir_0123456789abcdef_save' '2' "),
])
def test_a_refused_fcall_marks_the_pool_and_the_call_goes_by_evalsha(refusal: Exception) -> None:
    pool = Pool()
    steps, answer = run(scriptforms.attempts(call(), pool), [refusal, [1]])
    assert names(steps) == ["FCALL", "EVALSHA"] and answer == [1]
    assert not scriptforms.functions_form(pool) and scriptforms.read_only_form(pool)


def test_a_read_only_user_without_fcall_ro_gets_evalsha_ro() -> None:
    pool = Pool()
    refusal = NoPermissionError("this user has no permissions to run the 'fcall_ro' command")
    steps, _ = run(scriptforms.attempts(call(scripts.QUERY), pool), [refusal, [1]])
    assert names(steps) == ["FCALL_RO", "EVALSHA_RO"]


def test_the_scripts_own_errors_surface_as_they_are() -> None:
    pool = Pool()
    for error in (SCRIPT_ERROR, ResponseError("OOM command not allowed when used memory > 'maxmemory'."),
                  NoPermissionError("No permissions to access a key"),
                  ResponseError("user_function:5: Function not found script: ir_0123456789abcdef_save, on "
                                "@user_function:5.")):
        steps, raised = run(scriptforms.attempts(call(), pool), [error])
        assert names(steps) == ["FCALL"] and raised is error
    assert scriptforms.functions_form(pool)


def test_not_found_again_after_the_load_goes_by_evalsha_without_loading_twice() -> None:
    pool = Pool()
    steps, _ = run(scriptforms.attempts(call(), pool), [NOT_FOUND, "ir_x", NOT_FOUND, [1]])
    assert names(steps) == ["FCALL", "FUNCTION LOAD", "FCALL", "EVALSHA"]


def test_a_marked_pool_and_the_switch_send_evalsha() -> None:
    pool = Pool()
    scriptforms.mark_no_functions(pool)
    assert names(run(scriptforms.attempts(call(), pool), [[1]])[0]) == ["EVALSHA"]
    assert names(run(scriptforms.attempts(call(scripts.QUERY), pool), [[1]])[0]) == ["EVALSHA_RO"]
    scriptforms.setScriptFunctions(False)
    assert names(run(scriptforms.attempts(call(), Pool()), [[1]])[0]) == ["EVALSHA"]
    scriptforms.setScriptFunctions(True)
    assert names(run(scriptforms.attempts(call(), Pool()), [[1]])[0]) == ["FCALL"]


@pytest.mark.parametrize(("raw", "on"), [("0", False), ("off", False), ("1", True), ("", True), ("yes", True)])
def test_the_environment_variable(monkeypatch: pytest.MonkeyPatch, raw: str, on: bool) -> None:
    monkeypatch.setenv(scriptforms.FUNCTIONS_ENV_VAR, raw)
    scriptforms.setScriptFunctions(None)
    assert scriptforms.getScriptFunctions() is on


def test_a_bad_environment_variable_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(scriptforms.FUNCTIONS_ENV_VAR, "maybe")
    scriptforms.setScriptFunctions(None)
    with pytest.raises(ValueError, match="INDEXEDREDIS_FUNCTIONS"):
        scriptforms.getScriptFunctions()


def test_library_names_are_the_texts_and_distinct() -> None:
    by_name: dict[str, scripts.Script] = {}
    for script in scripts.ALL_SCRIPTS:
        assert scripts.is_library_name(script.library_name), script
        assert script.library_source.startswith(f"#!lua name={script.library_name}\n")
        assert f"function_name = '{script.function_name}'" in script.library_source
        other = by_name.setdefault(script.library_name, script)
        assert other.library_source == script.library_source  # one name, one text (QUERY / QUERY_ON_MASTER)
    assert len(by_name) == len(scripts.ALL_SCRIPTS) - 1
    assert scripts.Script("free_done", allow_oom=True).library_name == scripts.FREE_DONE.library_name
    assert scripts.Script("free_done").library_name != scripts.FREE_DONE.library_name  # other flags, other text
    assert not scripts.is_library_name("ir_mine") and not scripts.is_library_name("ir_0123456789ABCDEF")


def test_flags() -> None:
    for script in scripts.ALL_SCRIPTS:
        assert ("no-writes" in script.flags) is (script.readonly or script is scripts.QUERY_ON_MASTER), script
    assert {script.name for script in scripts.ALL_SCRIPTS if "allow-oom" in script.flags} == {
        "delete", "free_done", "free_keys", "drop_bookkeeping", "reset_abandon", "reset_sweep"}
    assert scripts.SAVE.flags == () and scripts.UPDATE.flags == () and scripts.RESET_LOAD.flags == ()


_LOCAL = re.compile(r"^local\s+(?!function\b)([A-Za-z_][\w\s,]*?)\s*(?:=\s*(.*?))?\s*(?:--.*)?$")
_CONSTANT = re.compile(r"^(?:-?\d+(?:\.\d+)?|'[^']*'|\"[^\"]*\")$")


def state_locals(source: str) -> list[str]:
    """The top-level locals of a library file that are neither functions nor constants
    (numbers and strings, or tables named in capitals that nothing writes to): the
    state a function's library keeps between calls."""
    state = []
    for line in source.splitlines():
        found = _LOCAL.match(line)
        if not found:
            continue
        names = [name.strip() for name in found[1].split(",")]
        values = [value.strip() for value in (found[2] or "").split(",")] if found[2] else []
        for i, name in enumerate(names):
            value = values[i] if i < len(values) else None
            if value is not None and _CONSTANT.match(value):
                continue
            if value is not None and value.startswith("{") and name.isupper() and not _written(source, name):
                continue  # a constant table
            state.append(name)
    return state


def _written(source: str, name: str) -> bool:
    """Whether anything assigns to the table ``name`` (or to one of its items) after
    its definition, other than a top-level statement (which runs once, when the
    library loads: ``LEAF.S = {...}`` in query_lib.lua)."""
    assignment = re.compile(rf"(?<![\w.]){name}\s*(\[[^\]]*\]|\.\w+)?\s*=(?!=)")
    return any(assignment.search(line) and not assignment.match(line)
               for line in source.split(f"local {name} =", 1)[1].splitlines())


def reset_body(source: str, lib: str) -> str:
    found = re.search(rf"^local function reset_{lib}_state\(\)\n(.*?)^end$", source, re.M | re.S)
    assert found, f"{lib}.lua has no reset_{lib}_state()"
    return found[1]


@pytest.mark.parametrize(("lib", "user"), [("lib", scripts.SAVE), ("textindex", scripts.SAVE),
                                         ("query_lib", scripts.QUERY)])
def test_every_top_level_state_of_a_library_is_reset_per_call(lib: str, user: scripts.Script) -> None:
    source = files("IndexedRedis.scripts").joinpath(f"{lib}.lua").read_text(encoding="utf-8")
    state = state_locals(source)
    assert state, "the parser found nothing: it no longer reads the file"
    body = reset_body(source, lib)
    assigned = {name.strip() for line in body.splitlines() if "=" in line
                for name in line.split("=")[0].split(",")}
    assert set(state) <= assigned, f"{lib}.lua: state not reset in reset_{lib}_state: {set(state) - assigned}"
    assert f"reset_{lib}_state()" in user.library_source  # and the callback calls it


def test_a_constant_table_is_state_once_something_writes_to_it() -> None:
    assert state_locals("local FLAGS = {1, 2}\nlocal function f() return FLAGS[1] end\n") == []
    assert state_locals("local KINDS = {}\nKINDS.S = {}\nlocal function f() return KINDS.S end\n") == []
    assert state_locals("local FLAGS = {1, 2}\nlocal function f() FLAGS[3] = 4 end\n") == ["FLAGS"]
    assert state_locals("local FLAGS = {1, 2}\nlocal function f() FLAGS = {} end\n") == ["FLAGS"]
    assert state_locals("local flags = {1, 2}\n") == ["flags"]


def test_the_state_parser_sees_state() -> None:
    assert state_locals("local a = {}\nlocal B, C = 1, 'x'\nlocal d\nlocal function f() end\nlocal e, g = 2\n") \
        == ["a", "d", "g"]

"""`themis --help` and every `themis <command> --help` load none of the engine: no DuckDB, httpx,
trio, jinja2 or httptools, no adapter, use case or interpreter, nor the pydantic typer coerces
values with (issue 12: cold start). Checked by what the process imports, not by how long it
takes (timings are `bench/cold_start.py`'s). Rich stays: typer formats the help with it, though
not its Markdown and traceback modules, which Themis's help never uses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.test_help import COMMANDS
from tests.cli_process import run_themis, themis_env
from tests.fakeserver import FakeServer

pytestmark = pytest.mark.slow

# Top-level packages and themis subpackages a `--help` must not import.
ENGINE = (
    "duckdb",
    "_duckdb",
    "httpx",
    "trio",
    "jinja2",
    "httptools",
    "pydantic",  # typer's value coercion: `--help` coerces no value
    "ray",  # the Ray executor's, loaded only by an execution that asks for it
    "themis.adapters",
    "themis.app.api",
    "themis.app.wiring",
    "themis.app.execution",
    "themis.app.usecases",
    "themis.app.config",
)


def _engine_modules(imported: set[str]) -> list[str]:
    return sorted(
        name for name in imported for prefix in ENGINE if (name + ".").startswith(prefix + ".")
    )


def _imported_by(*args: str, cwd: Path) -> set[str]:
    """The modules the `themis` console script imports for `args`, from `-X importtime`."""
    result = run_themis(cwd, *args, env=themis_env(PYTHONPROFILEIMPORTTIME="1"))
    assert result.returncode == 0, result.stderr[-2000:]
    return _modules_in(result.stderr)


def _modules_in(import_log: str) -> set[str]:
    return {
        line.rsplit("|", 1)[1].strip()
        for line in import_log.splitlines()
        if line.startswith("import time:") and "|" in line
    }


@pytest.mark.parametrize("command", [(), ("run",)], ids=["themis", "run"])
def test_help_from_the_console_script_loads_no_engine(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    imported = _imported_by(*command, "--help", cwd=tmp_path)

    assert "themis.app.cli.run_commands" in imported  # the import log was read
    assert _engine_modules(imported) == []
    # typer's help formatter without its Markdown and rich-traceback imports (`help_format`)
    assert "typer.rich_utils" in imported
    unused = {"rich.markdown", "markdown_it", "rich.traceback", "rich.pretty"}
    assert sorted(imported & unused) == []


def test_every_command_help_loads_no_engine() -> None:
    script = (
        "import json, sys\n"
        "from themis.app.cli import main\n"
        f"for command in {[list(command) for command in COMMANDS]!r}:\n"
        "    sys.argv = ['themis', *command, '--help']\n"
        "    try:\n"
        "        main()\n"
        "    except SystemExit as done:\n"
        "        assert done.code in (0, None), (command, done.code)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    shown = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    imported = set(json.loads(shown.splitlines()[-1]))

    assert "themis.app.cli.lifecycle_commands" in imported
    assert _engine_modules(imported) == []


def test_commands_without_a_model_call_load_no_http_adapter(tmp_path: Path) -> None:
    # A fake-provider run and the report of it: no HTTP model is built, so httpx stays unloaded.
    store = tmp_path / "cold.duckdb"
    config = Path(__file__).resolve().parents[2] / "examples" / "demo.toml"
    ran = run_themis(tmp_path, "run", config, "--store", store, "--json", "--quiet")
    assert ran.returncode == 0, ran.stderr[-2000:]
    run_id = json.loads(ran.stdout)["run_id"]

    imported = _imported_by("report", run_id[:12], "--store", str(store), cwd=tmp_path)

    assert "themis.adapters.stores.duckdb" in imported  # the import log was read
    http = ("httpx", "httptools", "themis.adapters.models.http")
    assert [name for name in imported if name.split(".")[0] in http or name in http] == []
    # Nor the execution engine or the prompt renderer: a report renders no prompt (issue 12).
    engine = ("trio", "jinja2", "themis.app.execution")
    assert sorted(name for name in imported if name.startswith(engine)) == []


def test_a_run_and_its_report_load_duckdb_s_engine_without_its_python_package(
    tmp_path: Path,
) -> None:
    # `duckdb`'s relation layer and version lookup cost a process ~50 ms of CPU, for an API the
    # store never uses (ADR 0123).
    store = tmp_path / "engine.duckdb"
    config = Path(__file__).resolve().parents[2] / "examples" / "demo.toml"
    args = ("--store", store, "--json", "--quiet")
    ran = run_themis(tmp_path, "run", config, *args, env=themis_env(PYTHONPROFILEIMPORTTIME="1"))
    assert ran.returncode == 0, ran.stderr[-2000:]
    run_id = json.loads(ran.stdout)["run_id"]
    reported = _imported_by("report", run_id[:12], "--store", str(store), cwd=tmp_path)

    for imported in (_modules_in(ran.stderr), reported):
        assert "_duckdb" in imported  # the import log was read, the engine loaded
        assert sorted(name for name in imported if name.split(".")[0] == "duckdb") == []


def test_what_a_user_gets_from_the_store_has_duckdb_s_whole_api(tmp_path: Path) -> None:
    # In a process that never imported `duckdb` itself: `db_manager`'s connections and
    # `read_log`'s tables are DuckDB's, relations included (`sql`, `df`-style methods).
    config = Path(__file__).resolve().parents[2] / "examples" / "demo.toml"
    store = tmp_path / "api.duckdb"
    ran = run_themis(tmp_path, "run", config, "--store", store, "--json", "--quiet")
    assert ran.returncode == 0, ran.stderr[-2000:]
    run_id = json.loads(ran.stdout)["run_id"]
    fresh = "import sys, themis\nassert 'duckdb' not in sys.modules\n"
    table = (
        f"table = themis.log_table({run_id!r}, 'trials', {str(store)!r})\n"
        "print(len(table) > 0, table.relation.columns[0])\n"
    )
    queried = (
        f"storage = themis.StorageSpec(path={str(store)!r})\n"
        "orchestrator = themis.Orchestrator(themis.ProjectSpec(storage=storage))\n"
        "with orchestrator.db_manager.connect() as con:\n"
        "    print(con.sql('SELECT 41 + 1 AS n').fetchall())\n"
    )
    shown = [
        subprocess.run(
            [sys.executable, "-c", fresh + script], capture_output=True, text=True, check=True
        ).stdout.strip()
        for script in (table, queried)
    ]
    assert shown == ["True run_id", "[(42,)]"]


def test_a_quiet_json_run_and_the_json_run_list_load_no_rich(tmp_path: Path) -> None:
    # Rich's console, table, text and progress modules cost a command ~25 ms of CPU to import;
    # a command that prints only JSON, with no progress bar, prints nothing through them.
    store = tmp_path / "plain.duckdb"
    config = Path(__file__).resolve().parents[2] / "examples" / "demo.toml"
    args = ("--store", store, "--json", "--quiet")
    ran = run_themis(tmp_path, "run", config, *args, env=themis_env(PYTHONPROFILEIMPORTTIME="1"))
    assert ran.returncode == 0, ran.stderr[-2000:]
    listed = _imported_by("runs", "--store", str(store), "--json", cwd=tmp_path)

    for imported in (_modules_in(ran.stderr), listed):
        assert "themis.app.cli.shared" in imported  # the import log was read
        assert sorted(name for name in imported if name.split(".")[0] == "rich") == []


def test_run_and_report_coerce_their_values_without_pydantic(tmp_path: Path) -> None:
    # typer coerces every value through pydantic, whose import and adapters cost a command
    # ~0.15-0.2 s of CPU; `themis.app.cli.coercion` answers the plain values (a path, a list of
    # strings, a choice, a number) itself.
    store = tmp_path / "plain.duckdb"
    config = Path(__file__).resolve().parents[2] / "examples" / "demo.toml"
    args = ("--store", store, "--json", "--fail-under", "0.1", "--set", "seed=3")
    ran = run_themis(tmp_path, "run", config, *args, env=themis_env(PYTHONPROFILEIMPORTTIME="1"))
    assert ran.returncode == 0, ran.stderr[-2000:]
    run_id = json.loads(ran.stdout)["run_id"]
    reported = _imported_by(
        "report", run_id[:12], "--store", str(store), "--format", "json", cwd=tmp_path
    )

    for imported in (_modules_in(ran.stderr), reported):
        assert "themis.app.cli.coercion" in imported  # the import log was read
        assert sorted(name for name in imported if name.split(".")[0] == "pydantic") == []


def _calls_shown(fake: FakeServer, calls: int) -> list[str]:
    """What a process making `calls` calls to `fake` on the lean client prints: each answer's
    text (or its error's kind, status, hint and message), then whether it imported httpx."""
    script = (
        "import sys, trio\n"
        "from themis.adapters.clocks import SystemClock\n"
        "from themis.adapters.models.http import PoolLimits\n"
        "from themis.adapters.models.openai import OpenAICompatibleModel\n"
        "from themis.core.endpoint import Endpoint\n"
        "from themis.core.generation import ModelCallError\n"
        "from themis.core.planner import ModelRequest\n"
        "from themis.core.prompting import Message\n"
        "from themis.core.spec import GenerationParams\n"
        f"model = OpenAICompatibleModel('local', Endpoint(base_url={fake.openai_base_url!r}),\n"
        "    clock=SystemClock(), pool=PoolLimits(size=2, timeout=None))\n"
        "request = ModelRequest(trial_key='k', provider='local', model='m',\n"
        "    messages=(Message('user', 'What is 1 + 2?'),), params=GenerationParams(),\n"
        "    options={}, sample=0)\n"
        "async def main():\n"
        f"    for _ in range({calls}):\n"
        "        try:\n"
        "            print((await model.generate(request)).text)\n"
        "        except ModelCallError as error:\n"
        "            print(error.kind, error.status, error.retry_after_s, error.message)\n"
        "trio.run(main)\n"
        "print('httpx' in sys.modules)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.splitlines()


def test_calls_to_a_plain_http_endpoint_that_succeed_load_no_httpx(fake: FakeServer) -> None:
    # The lean client raises httpx's exception types, but imports httpx (~80 ms with its
    # command line's modules) only to raise one.
    shown = _calls_shown(fake, 2)
    assert len(shown) == 3  # two answers
    assert shown[-1] == "False"


def test_error_answers_of_a_plain_http_endpoint_load_no_httpx(fake: FakeServer) -> None:
    # Importing httpx mid-run blocks every call of the run for as long as the import takes:
    # at the first failure, a retry waited ~0.2 s longer than its delay on a loaded machine
    # (what made llmock judge a run's backoff constant). The status, hint and redirect are
    # read without it.
    fake.control(
        script=[
            {"fault": {"kind": "status", "status": 500}, "times": 1},
            {"fault": {"kind": "status", "status": 429, "retry_after": 2}, "times": 1},
            {"fault": {"kind": "status", "status": 301, "headers": {"Location": "/v2"}}},
        ]
    )
    shown = _calls_shown(fake, 3)
    assert shown[0].startswith("server 500 None local: HTTP 500")
    assert shown[1].startswith("rate_limit 429 2.0 local: HTTP 429")
    assert shown[2].startswith("bad_request 301 None local: HTTP 301 redirect to /v2:")
    assert shown[-1] == "False"


def test_plain_templates_are_checked_and_rendered_without_jinja2() -> None:
    script = (
        "import sys\n"
        "from themis.core.prompting import render, template_fields\n"
        "from themis.core.spec import Case, PromptSpec\n"
        "prompt = PromptSpec(name='p', template='What is {{ a }} + {{b}}?',\n"
        "    system='Be {{ tone }}.')\n"
        "print(sorted(template_fields(prompt)))\n"
        "case = Case(id='c', fields={'a': 1, 'b': 2, 'tone': 'terse'})\n"
        "print([m.content for m in render(prompt, case)])\n"
        "print('jinja2' in sys.modules)\n"
    )
    shown = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert shown == ["['a', 'b', 'tone']", "['Be terse.', 'What is 1 + 2?']", "False"]


# What a run of a spec over an OpenAI-compatible endpoint never uses, and so must not import
# before its first call (ADR 0074: each import builds classes or compiles patterns on that path):
# resuming, replaying, reporting and the queue's listing, config diffs, the choice parser's
# grammar, the scripted, plugin and Anthropic models.
UNUSED_BY_A_RUN = (
    "themis.app.usecases.resume",
    "themis.app.usecases.reporting",
    "themis.app.api.answers",
    "themis.core.queue",
    "themis.core.diffing",
    "themis.core.case_results",
    "themis.core.choice_grammar",
    "themis.adapters.models.scripted",
    "themis.adapters.models.plugin",
    "themis.adapters.models.anthropic",
)


def test_a_run_of_a_spec_loads_none_of_what_it_does_not_use(
    fake: FakeServer, tmp_path: Path
) -> None:
    store = str(tmp_path / "s.duckdb")
    script = (
        "import json, sys\n"
        "import themis\n"
        "from themis.core.endpoint import Endpoint\n"
        "spec = themis.ExperimentSpec(seed=1, samples=1,\n"
        "    datasets=[themis.DatasetSpec(name='d', cases=[\n"
        "        themis.Case(id=f'q{i}', fields={'a': i}, expected=str(i)) for i in range(4)])],\n"
        "    models=[themis.ModelSpec(name='m', provider='local', api='chat', model='x')],\n"
        "    prompts=[themis.PromptSpec(name='p', template='Say {{ a }}')],\n"
        "    parser=themis.ParserSpec(name='number'),\n"
        "    metrics=[themis.MetricSpec(name='numeric_match')])\n"
        "runtime = themis.RuntimeConfig(progress='off',\n"
        f"    endpoints={{'local': Endpoint(base_url={fake.openai_base_url!r})}})\n"
        f"result = themis.Experiment.from_spec(spec, runtime).run(store={store!r})\n"
        "print(json.dumps([result.model_calls, sorted(sys.modules)]))\n"
    )
    shown = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    calls, imported = json.loads(shown.splitlines()[-1])

    assert calls == 4
    assert "themis.adapters.models.openai" in imported  # the run's modules were listed
    assert sorted(set(imported) & set(UNUSED_BY_A_RUN)) == []

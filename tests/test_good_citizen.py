"""batchrun inside someone else's process: nothing of another library changed, no signal handler
left behind, no private module of another package imported, imports pointing one way."""

import ast
import asyncio
import signal
import sys
import types
from pathlib import Path

import httpx

import batchrun
from batchrun.emulator import EmulatorThread
from tests.support.cli import API_KEY, prompts, write_csv
from tests.support.emulator import steady_config

PACKAGE = Path(batchrun.__file__).parent
WATCHED = ("httpx", "httpcore", "sniffio", "anyio", "h11")


def _snapshot() -> dict[str, object]:
    """Every attribute of every loaded module of the watched libraries, and every entry of their
    classes' namespaces, by identity."""
    seen: dict[str, object] = {}
    for name, module in list(sys.modules.items()):
        if not isinstance(module, types.ModuleType) or name.split(".")[0] not in WATCHED:
            continue
        for attr, value in list(vars(module).items()):
            if isinstance(value, types.ModuleType):
                continue  # submodules are bound to their parent as they are imported
            seen[f"{name}.{attr}"] = value
            if isinstance(value, type) and value.__module__ == name:
                for key, member in list(vars(value).items()):
                    seen[f"{name}.{attr}.{key}"] = member
    return seen


async def _plain_httpx_request(url: str) -> int:
    async with httpx.AsyncClient() as client:
        response = await client.get(url, headers={"Authorization": f"Bearer {API_KEY}"})
        return response.status_code


def test_a_batch_leaves_httpx_httpcore_and_sniffio_as_it_found_them(tmp_path: Path) -> None:
    manifest = write_csv(tmp_path / "b.csv", prompts(6))
    with EmulatorThread(steady_config(run_seconds=0.05)) as emu:
        probe = f"{emu.base_url}/techniques/tech_text2img"
        # The host has used httpx already, as a notebook with another SDK would have.
        assert asyncio.run(_plain_httpx_request(probe)) == 200
        before = _snapshot()
        handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        df = batchrun.run_batch(manifest, "tech_text2img", api_key=API_KEY, base_url=emu.base_url,
                                state_dir=tmp_path / "s", progress=False)  # fmt: skip
        assert (df["status"] == "completed").all()
        after = _snapshot()
        changed = sorted(k for k in before if k in after and after[k] is not before[k])
        added = sorted(k for k in after if k not in before and k.count(".") >= 2)
        assert changed == [] and added == [], (changed, added)
        assert {s: signal.getsignal(s) for s in handlers} == handlers
        # The host's own clients still work, async and sync.
        assert asyncio.run(_plain_httpx_request(probe)) == 200
        with httpx.Client() as client:
            assert client.get(probe, headers={"Authorization": f"Bearer {API_KEY}"}).is_success


def _imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, absolute module, imported names) for each import statement of one module."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(parts + ([base] if base else []))
            names = [a.name for a in node.names]
            found.append((node.lineno, base, names))
            # "from . import x" may import a submodule x
            found += [(node.lineno, f"{base}.{n}", []) for n in names if not node.module]
    return found


def test_no_module_imports_a_private_module_of_another_package() -> None:
    bad = []
    for path in PACKAGE.rglob("*.py"):
        for line, module, names in _imports(path):
            if module.split(".")[0] == "batchrun":
                continue
            private = [p for p in module.split(".") if p.startswith("_") and p != "__future__"]
            private += [n for n in names if n.startswith("_")]
            if private:
                bad.append(f"{path.relative_to(PACKAGE)}:{line}: {module} {names}")
    assert bad == []


# What each layer may import of batchrun: the layer below, never above. Top-level modules
# (models, errors, keys) are the floor; the package's __init__ exposes the public API lazily.
LAYERS = {
    "cli": {"cli", "engine", "api", "journal", "manifest", "report", "models", "errors", "keys",
            "emulator", "batch", "demo"},
    "batch": {"cli", "engine", "api", "journal", "report", "models", "errors"},
    "engine": {"engine", "api", "journal", "manifest", "report", "models", "errors", "keys",
               "tiers"},
    "api": {"api", "models", "errors"},
    "journal": {"journal", "models", "errors", "keys"},
    "manifest": {"manifest", "models", "errors", "keys"},
    "report": {"report", "journal", "models", "errors", "tiers"},
    "emulator": {"emulator"},
    "models": set(),
    "errors": set(),
    "keys": {"models"},
    "tiers": set(),
    "demo": set(),
    "__main__": {"cli"},
}  # fmt: skip


def test_imports_point_one_way() -> None:
    bad = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        layer = rel.parts[0].removesuffix(".py")
        if layer == "__init__":
            continue
        for line, module, _ in _imports(path):
            parts = module.split(".")
            if parts[0] != "batchrun" or len(parts) == 1:
                continue
            target = parts[1]
            if target not in LAYERS[layer] and not target.startswith("__"):
                bad.append(f"{rel}:{line}: {layer} imports {module}")
    assert bad == []

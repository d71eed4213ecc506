"""The RestrictedPython policy broker code runs under (the second layer).

The sandbox is the boundary; this layer keeps broker code to the objects it is
given. What it promises (docs/security.md, "Guarded code"):

* **Source**: compiled by RestrictedPython (no ``_`` names, no ``exec``/``eval``);
  source the compiler cannot handle safely (too large, nested too deeply, null bytes,
  not UTF-8) is refused with the reason, never a traceback (:func:`compile_broker`).
  The static checks on the host call the very same functions.
* **Modules**: imports only from the allowlist, and never the real module: a
  :class:`ModuleView` offers the names the module's rule in ``catalogue`` allows
  (reviewed module by module, each with its reason); helper modules of allowed
  packages that do file I/O are refused.
* **Every value read** (attribute, item, loop item, imported name) is vetted
  (:meth:`Policy.vet`): modules become views or are refused; values whose class or
  function comes from a module broker code may not use (``urllib3``, ``io``,
  ``socket``...) are refused; so are the callables that do attribute access with
  names the caller chooses (``str.format``, ``Formatter.get_field``, custom
  ``functools.update_wrapper`` lists...) whatever route reached them (``super()``, a
  subclass, a class attribute). ``str.format``/``format_map`` and ``string.Formatter``
  are available in guarded versions whose field lookups go through these guards.
* **Writes**: only to ``dict``/``list`` and to classes defined by broker code and
  their instances; never to SDK, library or module objects; ``setattr`` refuses ``_``
  names.
"""

from __future__ import annotations

import _string
import ast
import builtins
import contextlib
import functools
import importlib
import operator
import string
import sys
import types
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from RestrictedPython import compile_restricted, limited_builtins, safe_builtins, utility_builtins
from RestrictedPython.Guards import guarded_iter_unpack_sequence, guarded_unpack_sequence
from RestrictedPython.transformer import INSPECT_ATTRIBUTES

try:  # inside the sandbox the runner's folder is on sys.path; on the host, a package
    from . import catalogue
except ImportError:  # pragma: no cover - the in-sandbox layout
    import catalogue  # type: ignore[no-redef]

DEFAULT_IMPORTS = (
    "json", "re", "datetime", "time", "hashlib", "hmac", "base64", "urllib.parse",
    "urllib.request", "urllib.error", "requests", "email", "string", "collections",
    "math", "itertools", "functools", "html", "textwrap", "uuid", "brokerage_sdk",
)  # fmt: skip
"""modules broker code may import (a name also allows its submodules, unless the catalogue
refuses them); what each offers is in ``catalogue.CATALOGUE``"""

BLOCKED_ATTRIBUTES = frozenset({
    "gi_frame", "gi_code", "gi_yieldfrom", "cr_frame", "cr_code", "cr_await", "cr_origin",
    "ag_frame", "ag_code", "ag_await", "tb_frame", "tb_next", "f_back", "f_globals",
    "f_locals", "f_builtins", "f_code", "f_trace", "mro", "func_globals",
}) | INSPECT_ATTRIBUTES  # fmt: skip
"""attribute names refused on any object, whatever RestrictedPython's version knows"""

EXCEPTION_BLOCKED = frozenset({"obj", "with_traceback"})
"""exception attributes that hand out objects from trusted frames"""

FORMAT_METHODS = frozenset({"format", "format_map"})
"""str methods that look up attributes named in the string"""

EXTRA_BUILTINS = (
    "dict", "list", "set", "frozenset", "enumerate", "sorted", "reversed", "min", "max",
    "sum", "any", "all", "map", "filter", "iter", "next", "object", "super", "property",
    "staticmethod", "classmethod", "bytearray", "Exception", "NotImplementedError",
    "StopIteration", "LookupError", "format", "print", "range",
)  # fmt: skip
"""builtins beyond RestrictedPython's safe set that ordinary brokers need (``range`` unbounded:
it is lazy, and the sandbox caps time and memory)"""

PLAIN_TYPES = frozenset({
    str, int, float, bool, type(None), bytes, bytearray, dict, list, tuple, set, frozenset,
    complex, range, slice,
})  # fmt: skip
"""values that need no vetting"""

LOCAL_MARK = "__brokerage_local__"
"""set on modules loaded from the broker's own files"""

MAX_SOURCE_CHARS = 512 * 1024
"""longest source file compiled (the package cap per file, in characters)"""
MAX_NESTING = 120
"""deepest syntax tree compiled: RestrictedPython's transformer and the compiler recurse
per level; a limit of our own makes the checker and the runner agree whatever stack
each has (ordinary code stays below 40)"""

SELF = __name__
"""this module's name: here ``policy``, on the host ``brokerage.sandbox.runner.policy``"""


class PolicyError(ImportError):
    """Broker code tried an import the policy refuses."""


class SourceRefused(SyntaxError):  # noqa: N818 - a SyntaxError, as callers expect
    """Source the compiler will not take (size, nesting, null bytes, encoding)."""

    def __init__(self, message: str, line: int | None = None) -> None:
        text = f"Line {line}: source refused: {message}" if line else f"source refused: {message}"
        super().__init__(text)
        self.lineno = line
        self.text_message = text

    def __str__(self) -> str:
        return self.text_message


LAZY_STDLIB_IMPORTS = ("_strptime", "encodings")
"""modules the standard library imports lazily on behalf of allowed ones (datetime.strptime,
codecs by name); C code resolves those imports through the broker's guarded __import__"""


def module_allowed(name: str, allowed: Iterable[str]) -> bool:
    """On the allowlist (or below an entry) and not refused by the catalogue."""
    if catalogue.refusal_for(name) is not None:
        return False
    entries = (*allowed, *LAZY_STDLIB_IMPORTS)
    return any(name == entry or name.startswith(entry + ".") for entry in entries)


def module_transit(name: str, allowed: Iterable[str]) -> bool:
    """A package above an allowed module (``urllib`` for ``urllib.parse``)."""
    return any(entry.startswith(name + ".") for entry in allowed)


# -- source ------------------------------------------------------------------------------


def decode_source(data: bytes, filename: str) -> str:
    """UTF-8 (a leading BOM dropped), else :class:`SourceRefused` naming the byte."""
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        line = bytes(data)[: exc.start].count(b"\n") + 1
        raise SourceRefused(f"{filename} is not UTF-8 ({exc.reason} at byte {exc.start})",
                            line) from None  # fmt: skip
    return text[1:] if text.startswith("\ufeff") else text


def parse_source(source: str, filename: str) -> ast.Module:
    """The syntax tree, or SyntaxError (a plain one for ordinary syntax errors,
    :class:`SourceRefused` for source the compiler must not be given)."""
    if len(source) > MAX_SOURCE_CHARS:
        raise SourceRefused(f"{filename} has {len(source)} characters; the limit is "
                            f"{MAX_SOURCE_CHARS}")  # fmt: skip
    if "\x00" in source:
        raise SourceRefused("the source contains a null byte", source[: source.index("\x00")]
                            .count("\n") + 1)  # fmt: skip
    with _refusing("parse"):
        tree = ast.parse(source, filename)
    depth, line = nesting(tree)
    if depth > MAX_NESTING:
        raise SourceRefused(f"nested too deeply: {depth} levels (the limit is {MAX_NESTING})", line)
    return tree


def nesting(tree: ast.AST) -> tuple[int, int]:
    """Depth of the deepest node (counted without recursion) and its line."""
    deepest, line = 0, 0
    stack: list[tuple[ast.AST, int]] = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > deepest:
            deepest, line = depth, getattr(node, "lineno", line)
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return deepest, line


def compile_broker(source: str, filename: str) -> types.CodeType:
    """Compile broker source under RestrictedPython; SyntaxError lists every refusal.

    Used by the runner and by the static checks alike, so both reach one verdict.
    """
    try:
        tree: Any = parse_source(source, filename)
    except SourceRefused:
        raise
    except SyntaxError:
        tree = source  # RestrictedPython reports it in its own words
    with _refusing("compile"):
        return compile_restricted(tree, filename=filename, mode="exec")


@contextlib.contextmanager
def _refusing(step: str) -> Iterator[None]:
    """What the parser or compiler cannot handle becomes a refusal naming the reason."""
    try:
        yield
    except (RecursionError, MemoryError):
        raise SourceRefused(
            f"nested too deeply to {step} (the limit is {MAX_NESTING} levels)"
        ) from None
    except (ValueError, OverflowError) as exc:
        raise SourceRefused(f"cannot {step}: {exc}") from None


# -- module views ------------------------------------------------------------------------

_VIEWS: weakref.WeakKeyDictionary[types.ModuleType, tuple[Policy, types.ModuleType, bool]] = (
    weakref.WeakKeyDictionary()
)
"""view -> (its policy, the real module, transit)"""


class ModuleView(types.ModuleType):
    """What broker code holds instead of a module: the names its rule offers, resolved
    on first use (guarded stand-ins, views of allowed submodules, vetted values)."""

    def __getattr__(self, name: str) -> Any:
        state = _VIEWS.get(self)
        if state is None:
            raise AttributeError(name)
        policy, real, transit = state
        value = policy.resolve(real, name, transit)
        self.__dict__[name] = value
        return value


def sys_stand_in() -> types.ModuleType:
    """What ``import sys`` gives broker code: the streams and little else."""
    stand_in = types.ModuleType("sys")
    for name in ("stdin", "stdout", "stderr", "version", "version_info", "maxsize", "byteorder"):
        setattr(stand_in, name, getattr(sys, name))
    stand_in.argv = ["broker"]  # type: ignore[attr-defined]
    stand_in.exit = sys.exit  # type: ignore[attr-defined]
    return stand_in


class ReadOnly:
    """What ``_write_`` hands back for an object broker code may not change."""

    __slots__ = ("_target",)

    def __init__(self, target: Any) -> None:
        object.__setattr__(self, "_target", target)

    def _refuse(self, *args: Any) -> None:
        kind = type(object.__getattribute__(self, "_target")).__name__
        raise TypeError(f"{kind} objects are read-only for broker code (only dicts, lists and "
                        "classes the broker defines can be changed)")  # fmt: skip

    __setattr__ = __delattr__ = __setitem__ = __delitem__ = _refuse


def _formatter_for(policy: Policy) -> type[string.Formatter]:
    class Formatter(string.Formatter):
        """string.Formatter whose ``{0.attr}``/``{0[key]}`` lookups go through the guards."""

        def get_field(self, field_name: str, args: Any, kwargs: Any) -> Any:
            first, rest = _string.formatter_field_name_split(field_name)
            obj = self.get_value(first, args, kwargs)
            for is_attr, key in rest:
                obj = policy.getattr(obj, key) if is_attr else policy.getitem(obj, key)
            return obj, first

    Formatter.__module__ = SELF
    return Formatter


class Policy:
    """Builds the restricted globals for one broker: guards plus a guarded import."""

    def __init__(
        self,
        allowed_imports: Iterable[str],
        local_modules: Mapping[str, Callable[[], types.ModuleType]],
        fake_modules: Mapping[str, types.ModuleType],
    ) -> None:
        self.allowed = tuple(allowed_imports)
        self.local_modules = local_modules
        self.fake_modules = fake_modules
        self.local_names = frozenset(local_modules) | {"__main__"}
        self.views: dict[str, ModuleView] = {}
        self.broker_classes: dict[int, type] = {}
        self.origins: dict[str, bool] = {}
        self.denied = catalogue.denied_values()
        self.trusted = {id(v): v for m in fake_modules.values() for v in vars(m).values()
                        if type(v) not in PLAIN_TYPES}  # fmt: skip
        """the stand-ins' own objects (the run's stdin/stdout/stderr) and their methods"""
        self.formatter = _formatter_for(self)
        self.stand_ins = dict(catalogue.guarded_stand_ins())
        self.stand_ins["string"] = {"Formatter": self.formatter}

    # -- modules -------------------------------------------------------------------------

    def module_refusal(self, name: str) -> str | None:
        """Why ``import name`` is refused (same words for the checker and the runner)."""
        why = catalogue.refusal_for(name)
        if why is not None:
            return f"import of {name!r} is not allowed: {why}"
        if not module_allowed(name, self.allowed):
            return f"import of {name!r} is not allowed"
        return None

    def name_refusal(self, module: str, name: str, transit: bool = False) -> str | None:
        """Why ``module.name`` is not offered, judged from the rules alone."""
        if name.startswith("_") or name == "*":
            return f"{module}.{name} is not offered to broker code"
        sub = f"{module}.{name}"
        if catalogue.refusal_for(sub) is not None:
            return f"{sub} is not allowed: {catalogue.refusal_for(sub)}"
        if transit:
            return None if module_allowed(sub, self.allowed) else f"{sub} is not allowed"
        rule = catalogue.rule_for(module)
        hidden = {**catalogue.CLI_ENTRY_POINTS, **(rule.hidden if rule else {})}
        if name in hidden:
            return f"{sub} is not offered to broker code: {hidden[name]}"
        offered = rule is None or rule.names is None or name in rule.names
        if not offered and not module_allowed(sub, self.allowed):
            return f"{sub} is not offered to broker code (not in {module}'s reviewed names)"
        return None

    def resolve(self, real: types.ModuleType, name: str, transit: bool = False) -> Any:
        """``real.name`` as broker code gets it, else AttributeError saying why not."""
        why = self.name_refusal(real.__name__, name, transit)
        if why is not None:
            raise AttributeError(why)
        stand_in = self.stand_ins.get(real.__name__, {}).get(name)
        if stand_in is not None:
            return stand_in
        sub = f"{real.__name__}.{name}"
        if not hasattr(real, name) and module_allowed(sub, self.allowed):
            with contextlib.suppress(ImportError):
                importlib.import_module(sub)
        value = getattr(real, name)
        return self.vet(value, sub)

    def view(self, real: types.ModuleType, transit: bool = False) -> ModuleView:
        view = self.views.get(real.__name__)
        if view is None:
            view = ModuleView(real.__name__, getattr(real, "__doc__", None))
            _VIEWS[view] = (self, real, transit)
            self.views[real.__name__] = view
        return view

    def module_value(self, module: types.ModuleType, where: str = "") -> types.ModuleType:
        """The view broker code may hold for ``module``, else AttributeError."""
        if isinstance(module, ModuleView) or getattr(module, LOCAL_MARK, False):
            return module
        name = module.__name__
        if name in self.fake_modules:
            if module is self.fake_modules[name]:
                return module
            raise AttributeError(f"module {name!r} is not allowed")
        if module_allowed(name, self.allowed):
            return self.view(module)
        if module_transit(name, self.allowed) and catalogue.refusal_for(name) is None:
            return self.view(module, transit=True)
        raise AttributeError(f"module {name!r} is not allowed")

    # -- values --------------------------------------------------------------------------

    def origin_ok(self, origin: Any) -> bool:
        if not isinstance(origin, str):
            return False
        known = self.origins.get(origin)
        if known is None:
            known = (
                origin in catalogue.EXTRA_ORIGINS
                or origin in self.local_names
                or origin in (SELF, catalogue.CATALOGUE_SELF)
                or module_allowed(origin, self.allowed)
            )
            self.origins[origin] = known
        return known

    def vet(self, value: Any, where: str = "value") -> Any:
        """``value`` if broker code may hold it, else AttributeError saying why."""
        cls = type(value)
        if cls in PLAIN_TYPES:
            return value
        if isinstance(value, types.ModuleType):
            return self.module_value(value, where)
        why = self.denied.get(id(value))
        if why is not None:
            raise AttributeError(f"{where} is not available to broker code: {why}")
        if id(value) in self.trusted:
            return value
        if cls is types.MethodType:
            func = value.__func__
            why = self.denied.get(id(func))
            if why is not None:
                raise AttributeError(f"{where} is not available to broker code: {why}")
            origin = getattr(func, "__module__", None)
        elif cls is types.BuiltinMethodType:
            owner = value.__self__
            if isinstance(owner, str) and value.__name__ in FORMAT_METHODS:
                raise AttributeError(
                    f"{where}: str.{value.__name__} of a str subclass through "
                    "super() is not available (use the str's own method)"
                )
            if id(owner) in self.trusted:
                return value
            if owner is None or isinstance(owner, types.ModuleType):
                origin = value.__module__ or getattr(owner, "__name__", None)
            elif isinstance(owner, type):
                origin = owner.__module__
            else:
                origin = type(owner).__module__
        elif isinstance(value, type) or cls is types.FunctionType:
            origin = value.__module__
        elif hasattr(value, "__objclass__") and cls.__module__ == "builtins":
            origin = value.__objclass__.__module__  # slot wrappers and method descriptors
        else:
            origin = cls.__module__
        if isinstance(value, catalogue.NON_HTTP_HANDLERS):
            raise AttributeError(f"{where}: handlers that leave HTTP are not available")
        if not self.origin_ok(origin):
            raise AttributeError(f"{where}: objects from {origin!r} are not available to "
                                 "broker code")  # fmt: skip
        return value

    def getattr(self, obj: Any, name: str, *default: Any) -> Any:
        if type(name) is not str:
            raise TypeError("attribute names must be str")
        if name.startswith("_"):
            raise AttributeError(f'"{name}" is an invalid attribute name because it starts '
                                 'with "_"')  # fmt: skip
        if name in BLOCKED_ATTRIBUTES:
            raise AttributeError(f'"{name}" is a restricted name')
        if isinstance(obj, BaseException) and name in EXCEPTION_BLOCKED:
            raise AttributeError(f'"{name}" is not available on exceptions')
        if isinstance(obj, str) and name in FORMAT_METHODS and not isinstance(obj, type):
            formatter = self.formatter()
            if name == "format":
                return functools.partial(formatter.format, str(obj))
            return functools.partial(formatter.vformat, str(obj), ())
        if isinstance(obj, ModuleView):
            return getattr(obj, name, *default)  # resolved and vetted by the view
        value = getattr(obj, name, *default)
        return self.vet(value, f"{type(obj).__name__}.{name}")

    def getitem(self, obj: Any, key: Any) -> Any:
        return self.vet(obj[key], f"{type(obj).__name__}[...]")

    def getiter(self, obj: Any) -> Iterator[Any]:
        if type(obj) in (list, tuple, str, bytes, range):
            return iter(obj)
        return self._vetted(iter(obj))

    def _vetted(self, items: Iterator[Any]) -> Iterator[Any]:
        for item in items:
            yield self.vet(item, "an item")

    # -- writes --------------------------------------------------------------------------

    def broker_made(self, obj: Any) -> bool:
        """A class defined by broker code, or an instance of one."""
        cls = obj if isinstance(obj, type) else type(obj)
        return self.broker_classes.get(id(cls)) is cls

    def write(self, obj: Any) -> Any:
        if type(obj) in (dict, list) or self.broker_made(obj):
            return obj
        return ReadOnly(obj)

    def setattr(self, obj: Any, name: str, value: Any) -> None:
        if type(name) is not str or name.startswith("_"):
            raise AttributeError(f"setattr of {name!r} is not allowed")
        setattr(self.write(obj), name, value)

    def delattr(self, obj: Any, name: str) -> None:
        if type(name) is not str or name.startswith("_"):
            raise AttributeError(f"delattr of {name!r} is not allowed")
        delattr(self.write(obj), name)

    def build_class(self, func: Any, name: str, *bases: Any, **kwargs: Any) -> type:
        """Classes defined by broker code (and their instances) accept attribute writes."""
        for base in bases:
            self.vet(base, f"base class of {name}")
        cls = builtins.__build_class__(func, name, *bases, **kwargs)
        self.broker_classes[id(cls)] = cls
        return cls

    # -- imports -------------------------------------------------------------------------

    def import_(
        self,
        name: str,
        globals: Mapping[str, Any] | None = None,  # noqa: A002 - __import__'s signature
        locals: Mapping[str, Any] | None = None,  # noqa: A002
        fromlist: tuple[str, ...] | None = (),
        level: int = 0,
    ) -> types.ModuleType:
        if level != 0:
            raise PolicyError("relative imports are not allowed; import bundle modules by name")
        module = self._import_root(name, fromlist)
        for item in fromlist or ():
            try:
                if item.startswith("_") or item == "*":
                    raise AttributeError(f"{name}.{item} is not offered to broker code")
                value = getattr(module, item)
                if not isinstance(module, ModuleView):
                    self.vet(value, f"{name}.{item}")
            except AttributeError as exc:
                raise PolicyError(f"cannot import {item!r} from {name!r}: {exc}") from None
        return module

    def _import_root(self, name: str, fromlist: tuple[str, ...] | None) -> types.ModuleType:
        if name in self.fake_modules:
            return self.fake_modules[name]
        if name in self.local_modules:
            return self.local_modules[name]()
        why = self.module_refusal(name)
        if why is not None:
            raise PolicyError(why)
        # "import urllib.parse" binds the package "urllib": a transit view offering only
        # its allowed submodules
        real = builtins.__import__(name, None, None, fromlist or (), 0)
        return self.module_value(real)

    def import_problems(self, tree: ast.AST) -> list[tuple[int, str]]:
        """Every import in ``tree`` the policy refuses, as (line, reason): what the runner
        refuses at load and the static checks report, in the same words."""
        problems = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    why = self._static_module(alias.name)
                    if why:
                        problems.append((node.lineno, why))
            elif isinstance(node, ast.ImportFrom):
                if node.level or not node.module:
                    why = "relative imports are not allowed; import the package's modules by name"
                    problems.append((node.lineno, why))
                    continue
                why = self._static_module(node.module)
                if why:
                    problems.append((node.lineno, why))
                    continue
                for alias in node.names:
                    why = self._static_name(node.module, alias.name)
                    if why:
                        problems.append((node.lineno, f"cannot import {alias.name!r} from "
                                                      f"{node.module!r}: {why}"))  # fmt: skip
        return problems

    def _static_module(self, name: str) -> str | None:
        if name in self.fake_modules or name in self.local_names:
            return None
        if name.split(".")[0] in self.local_names:
            return None
        return self.module_refusal(name)

    def _static_name(self, module: str, name: str) -> str | None:
        if name.startswith("_") or name == "*":
            return f"{module}.{name} is not offered to broker code"
        if module in self.fake_modules:
            fake = self.fake_modules[module]
            return None if hasattr(fake, name) else f"{module}.{name} is not offered"
        if module in self.local_names or module.split(".")[0] in self.local_names:
            return None
        why = self.name_refusal(module, name)
        if why is not None:
            return why
        try:
            real = importlib.import_module(module)
        except Exception:  # noqa: BLE001 - not importable here (the SDK on the host)
            return None
        try:
            self.resolve(real, name)
        except AttributeError as exc:
            return str(exc)
        return None

    # -- globals -------------------------------------------------------------------------

    def builtins(self) -> dict[str, Any]:
        names = dict(safe_builtins)
        names.update(limited_builtins)
        names.update(utility_builtins)
        for name in EXTRA_BUILTINS:
            names[name] = getattr(builtins, name)
        for name in ("string", "math", "random"):  # RestrictedPython's utility modules
            names[name] = self.view(importlib.import_module(name))
        names.pop("whrandom", None)
        names["__import__"] = self.import_
        names["__build_class__"] = self.build_class
        names["getattr"] = self.getattr
        names["hasattr"] = lambda obj, name: _hasattr(self, obj, name)
        names["setattr"] = self.setattr
        names["delattr"] = self.delattr
        names["isinstance"] = isinstance
        names["issubclass"] = issubclass
        return names

    def globals(self, module_name: str) -> dict[str, Any]:
        """Fresh globals for one restricted module."""
        return {
            "__builtins__": self.builtins(),
            "__name__": module_name,
            "__metaclass__": type,
            "_getattr_": self.getattr,
            "_getitem_": self.getitem,
            "_getiter_": self.getiter,
            "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
            "_unpack_sequence_": guarded_unpack_sequence,
            "_write_": self.write,
            "_inplacevar_": _inplacevar,
            "_print_": Printer,
            "_apply_": _apply,
        }


def _hasattr(policy: Policy, obj: Any, name: str) -> bool:
    try:
        policy.getattr(obj, name)
    except Exception:
        return False
    return True


def _apply(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return func(*args, **kwargs)


_INPLACE = {
    "+=": operator.iadd, "-=": operator.isub, "*=": operator.imul, "/=": operator.itruediv,
    "//=": operator.ifloordiv, "%=": operator.imod, "**=": operator.ipow,
    "<<=": operator.ilshift, ">>=": operator.irshift, "&=": operator.iand,
    "|=": operator.ior, "^=": operator.ixor, "@=": operator.imatmul,
}  # fmt: skip


def _inplacevar(op: str, target: Any, value: Any) -> Any:
    return _INPLACE[op](target, value)


class Printer:
    """``print`` in broker code writes to the run's stdout (captured and capped)."""

    def __init__(self, _getattr_: Any = None) -> None:
        self._getattr = _getattr_

    def _call_print(self, *objects: Any, **kwargs: Any) -> None:
        if kwargs.get("file") is None:
            kwargs["file"] = sys.stdout
        print(*objects, **kwargs)

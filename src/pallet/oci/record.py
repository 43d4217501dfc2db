"""Records: what ``@dataclass`` gives a class of plain data, for less at import time.

``@dataclass`` compiles an ``__init__``, ``__repr__``, ``__eq__`` (and, frozen, a
``__hash__``, ``__setattr__`` and ``__delattr__``) for each class when its module is
imported: about 0.3 ms a class, and the ``dataclasses`` module itself loads
``inspect``, ``ast`` and ``dis``.  ``pallet run`` defines some twenty such classes on
its way.  ``record`` gives a class the same methods, generic over its fields (read
once from its annotations and defaults), so defining one costs a few microseconds.

For the type checker ``record`` and ``field`` *are* ``dataclasses.dataclass`` and
``dataclasses.field``: construction, field types and ``replace`` are checked as for
any dataclass.  At run time a record behaves as the dataclass would for what pallet
uses: keyword and positional construction with defaults and default factories,
equality between instances of the same class (fields with ``compare=False``
ignored), hashing and immutability when frozen, the same ``repr``, and
``dataclasses.replace``/``fields``/``asdict``/``is_dataclass``, which see real
``Field`` objects built on first use (that imports ``dataclasses``, off the hot path).
:func:`replace` and :func:`field_names` here do the same without that import.
Options beyond ``frozen`` and ``eq`` fall back to ``dataclasses.dataclass`` itself.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dataclasses import dataclass as record
    from dataclasses import field, replace
    from typing import Any

    def field_names(cls: Any) -> tuple[str, ...]: ...

else:
    _MISSING = object()

    class _FieldSpec:
        """What ``field(...)`` was given, until the class is processed."""

        __slots__ = ("compare", "default", "default_factory", "hash", "init", "kw_only", "metadata", "repr")

        def __init__(self, default, default_factory, init, repr, hash, compare, metadata, kw_only):  # noqa: A002
            self.default = default
            self.default_factory = default_factory
            self.init = init
            self.repr = repr
            self.hash = hash
            self.compare = compare
            self.metadata = metadata
            self.kw_only = kw_only

    def field(*, default=_MISSING, default_factory=_MISSING, init=True, repr=True,  # noqa: A002
              hash=None, compare=True, metadata=None, kw_only=_MISSING):
        if default is not _MISSING and default_factory is not _MISSING:
            raise ValueError("cannot specify both default and default_factory")
        return _FieldSpec(default, default_factory, init, repr, hash, compare, metadata, kw_only)

    def record(cls=None, /, *, init=True, repr=True, eq=True, order=False,  # noqa: A002
               unsafe_hash=False, frozen=False, **options):
        def wrap(c):
            if not (init and repr and eq) or order or unsafe_hash or options:
                import dataclasses

                return dataclasses.dataclass(c, init=init, repr=repr, eq=eq, order=order,
                                             unsafe_hash=unsafe_hash, frozen=frozen, **options)
            return _process(c, frozen)

        return wrap if cls is None else wrap(cls)

    class _Info:
        """A record class's fields, in order."""

        __slots__ = ("compare", "defaults", "factories", "fields", "frozen", "names", "post_init", "specs",
                     "types")

    def _is_classvar(annotation):
        a = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
        return a.startswith(("ClassVar", "typing.ClassVar")) or a in ("ClassVar",)

    def _process(cls, frozen):
        info = _Info()
        names, types, specs = [], {}, {}
        defaults, factories = {}, {}
        for base in reversed(cls.__mro__[1:]):
            binfo = base.__dict__.get("_record_info")
            if binfo is not None:
                for n in binfo.names:
                    if n not in types:
                        names.append(n)
                    types[n] = binfo.types[n]
                    specs[n] = binfo.specs[n]
                    defaults.pop(n, None)
                    factories.pop(n, None)
                    if n in binfo.defaults:
                        defaults[n] = binfo.defaults[n]
                    if n in binfo.factories:
                        factories[n] = binfo.factories[n]
        for n, annotation in cls.__dict__.get("__annotations__", {}).items():
            if _is_classvar(annotation):
                continue
            if isinstance(annotation, str) and annotation.startswith(("InitVar", "dataclasses.InitVar")):
                raise TypeError(f"{cls.__name__}.{n}: InitVar is not supported by record")
            if n not in types:
                names.append(n)
            types[n] = annotation
            defaults.pop(n, None)
            factories.pop(n, None)
            value = cls.__dict__.get(n, _MISSING)
            spec = value if isinstance(value, _FieldSpec) else None
            if spec is not None:
                if not spec.init or spec.kw_only is not _MISSING:
                    raise TypeError(f"{cls.__name__}.{n}: field(init=..., kw_only=...) is not supported by record")
                value = spec.default
                if spec.default_factory is not _MISSING:
                    factories[n] = spec.default_factory
            if value is not _MISSING:
                if isinstance(value, (list, dict, set)):
                    raise ValueError(f"mutable default {type(value)} for field {n} is not allowed: "
                                     "use default_factory")
                defaults[n] = value
                setattr(cls, n, value)
            elif n in cls.__dict__:
                delattr(cls, n)  # a field(default_factory=...) leaves no class attribute
            specs[n] = spec
        seen_default = False
        for n in names:
            if n in defaults or n in factories:
                seen_default = True
            elif seen_default:
                raise TypeError(f"non-default argument '{n}' follows default argument")
        info.names = tuple(names)
        info.types = types
        info.specs = specs
        info.defaults = defaults
        info.factories = factories
        info.compare = tuple(n for n in names if specs[n] is None or specs[n].compare)
        info.frozen = frozen
        info.post_init = hasattr(cls, "__post_init__")
        cls._record_info = info
        cls.__match_args__ = info.names
        cls.__init__ = _make_init(cls, info)
        if "__repr__" not in cls.__dict__:
            cls.__repr__ = _repr
        if "__eq__" not in cls.__dict__:
            cls.__eq__ = _eq
        if frozen:
            if "__hash__" not in cls.__dict__ or cls.__dict__["__hash__"] is None:
                cls.__hash__ = _hash
            cls.__setattr__ = _frozen_setattr
            cls.__delattr__ = _frozen_delattr
        elif "__hash__" not in cls.__dict__:
            cls.__hash__ = None
        cls.__dataclass_fields__ = _LazyFields()
        return cls

    def _make_init(cls, info):
        names = info.names
        count = len(names)
        defaults = info.defaults
        factories = info.factories
        post_init = info.post_init
        qualname = cls.__qualname__

        def __init__(self, *args, **kw):
            if len(args) > count:
                raise TypeError(f"{qualname}.__init__() takes {count + 1} positional arguments "
                                f"but {len(args) + 1} were given")
            d = self.__dict__
            for i, v in enumerate(args):
                d[names[i]] = v
            missing = []
            for n in names[len(args):]:
                if n in kw:
                    d[n] = kw.pop(n)
                elif n in defaults:
                    d[n] = defaults[n]
                elif n in factories:
                    d[n] = factories[n]()
                else:
                    missing.append(n)
            if kw:
                k = next(iter(kw))
                if k in names:
                    raise TypeError(f"{qualname}.__init__() got multiple values for argument '{k}'")
                raise TypeError(f"{qualname}.__init__() got an unexpected keyword argument '{k}'")
            if missing:
                raise TypeError(f"{qualname}.__init__() missing {len(missing)} required argument"
                                f"{'s' if len(missing) > 1 else ''}: " + ", ".join(repr(m) for m in missing))
            if post_init:
                self.__post_init__()

        __init__.__qualname__ = f"{qualname}.__init__"
        return __init__

    def _repr(self):
        info = type(self)._record_info
        specs = info.specs
        inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in info.names if specs[n] is None or specs[n].repr)
        return f"{type(self).__qualname__}({inner})"

    def _eq(self, other):
        if other.__class__ is not self.__class__:
            return NotImplemented
        names = self._record_info.compare
        return all(getattr(self, n) == getattr(other, n) for n in names)

    def _hash(self):
        info = self._record_info
        specs = info.specs
        return hash(tuple(getattr(self, n) for n in info.compare
                          if specs[n] is None or specs[n].hash is not False))

    def _frozen_setattr(self, name, value):
        if "_record_info" in type(self).__dict__ or name in self._record_info.types:
            from dataclasses import FrozenInstanceError

            raise FrozenInstanceError(f"cannot assign to field {name!r}")
        object.__setattr__(self, name, value)

    def _frozen_delattr(self, name):
        if "_record_info" in type(self).__dict__ or name in self._record_info.types:
            from dataclasses import FrozenInstanceError

            raise FrozenInstanceError(f"cannot delete field {name!r}")
        object.__delattr__(self, name)

    class _LazyFields:
        """``__dataclass_fields__``: real ``dataclasses.Field`` objects, made on first use."""

        def __get__(self, obj, cls):
            import dataclasses

            info = cls._record_info
            fields = {}
            for n in info.names:
                spec = info.specs[n]
                kw = {}
                if n in info.defaults:
                    kw["default"] = info.defaults[n]
                if n in info.factories:
                    kw["default_factory"] = info.factories[n]
                if spec is not None:
                    kw.update(repr=spec.repr, hash=spec.hash, compare=spec.compare, metadata=spec.metadata)
                f = dataclasses.field(**kw)
                f.name = n
                f.type = info.types[n]
                f._field_type = dataclasses._FIELD
                fields[n] = f
            if "_record_info" in cls.__dict__:
                cls.__dataclass_fields__ = fields
            return fields

    def replace(obj, /, **changes):
        """``dataclasses.replace`` for records (and dataclasses)."""
        info = getattr(type(obj), "_record_info", None)
        if info is None:
            import dataclasses

            return dataclasses.replace(obj, **changes)
        for n in info.names:
            if n not in changes:
                changes[n] = obj.__dict__[n]
        return obj.__class__(**changes)

    def field_names(cls):
        """The names of the fields of a record (or dataclass) class, in order."""
        info = cls.__dict__.get("_record_info") or getattr(cls, "_record_info", None)
        if info is not None:
            return info.names
        import dataclasses

        return tuple(f.name for f in dataclasses.fields(cls))


__all__ = ["field", "field_names", "record", "replace"]

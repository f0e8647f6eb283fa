"""Frozen record classes without the dataclasses module.

``from swindex import lookup; lookup(...)`` has a 30 ms budget, and importing dataclasses (with the inspect, ast and
dis modules it pulls in) took two thirds of it before any swindex code ran. The records a lookup hands out are built on
this base instead: typed fields, defaults, equality, hashing, ``repr`` and immutability as ``@dataclass(frozen=True)``
gives them, and type checkers read them as dataclasses (PEP 681's ``dataclass_transform``).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, ClassVar

    from typing_extensions import Self, dataclass_transform
else:

    def dataclass_transform(**_options):
        return lambda decorated: decorated


MISSING: Any = object()
"""A field's default when it has none (None is a default)."""


class FrozenRecordError(AttributeError):
    """Assigning to a record's field: lookups cache and share records, so one must never change under another caller."""


class Field:
    """One field of a record class: its name, default (or factory), and whether equality and ``repr`` show it."""

    __slots__ = ("name", "default", "default_factory", "compare", "repr")

    def __init__(
        self,
        default: Any = MISSING,
        default_factory: Callable[[], Any] | None = None,
        compare: bool = True,
        repr: bool = True,  # noqa: A002 (dataclasses.field's name for it)
    ) -> None:
        self.name = ""
        self.default = default
        self.default_factory = default_factory
        self.compare = compare
        self.repr = repr

    @property
    def required(self) -> bool:
        return self.default is MISSING and self.default_factory is None


def field(
    *,
    default: Any = MISSING,
    default_factory: Callable[[], Any] | None = None,
    compare: bool = True,
    repr: bool = True,  # noqa: A002 (dataclasses.field's name for it)
) -> Any:
    """A field with options, as ``dataclasses.field`` takes them; a field left out of equality is left out of
    hashing."""
    if default is not MISSING and default_factory is not None:
        raise ValueError("a field takes a default or a default_factory, not both")
    return Field(default, default_factory, compare, repr)


def fields(record: Record | type[Record]) -> tuple[Field, ...]:
    """A record class's fields in declaration order, as ``dataclasses.fields`` gives them."""
    return record._fields


@dataclass_transform(frozen_default=True, field_specifiers=(field, Field))
class Record:
    """Base of swindex's immutable records: subclasses declare annotated fields, as a frozen dataclass does."""

    _fields: ClassVar[tuple[Field, ...]] = ()

    def __init_subclass__(cls, **options: Any) -> None:
        super().__init_subclass__(**options)
        specs = {spec.name: spec for spec in cls._fields}  # inherited from a record base
        for name, annotation in cls.__dict__.get("__annotations__", {}).items():
            if str(annotation).startswith(("ClassVar", "typing.ClassVar")):
                continue
            value = cls.__dict__.get(name, MISSING)
            spec = value if isinstance(value, Field) else Field(value)
            spec.name = name
            if isinstance(value, Field):
                if spec.default is MISSING:
                    delattr(cls, name)
                else:
                    setattr(cls, name, spec.default)
            specs.pop(name, None)
            specs[name] = spec
        seen_default = ""
        for spec in specs.values():
            if spec.required and seen_default:
                raise TypeError(f"{cls.__name__}: field {spec.name!r} has no default but follows {seen_default!r}")
            seen_default = seen_default or ("" if spec.required else spec.name)
        cls._fields = tuple(specs.values())
        setattr(cls, "__match_args__", tuple(specs))  # positional patterns: `case Coordinate(layer, tensor)`

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        fields = self._fields
        name = type(self).__name__
        if len(args) > len(fields):
            raise TypeError(f"{name}() takes {len(fields)} positional arguments but {len(args)} were given")
        values = self.__dict__
        for spec, value in zip(fields, args):
            values[spec.name] = value
        for key, value in kwargs.items():
            if key in values:
                raise TypeError(f"{name}() got multiple values for argument {key!r}")
            values[key] = value
        if len(values) != len(fields) or len(kwargs) > 0:
            known = {spec.name for spec in fields}
            unknown = [key for key in kwargs if key not in known]
            if unknown:
                raise TypeError(f"{name}() got an unexpected keyword argument {unknown[0]!r}")
            for spec in fields:
                if spec.name in values:
                    continue
                if spec.default is not MISSING:
                    values[spec.name] = spec.default
                elif spec.default_factory is not None:
                    values[spec.name] = spec.default_factory()
                else:
                    raise TypeError(f"{name}() missing required argument {spec.name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        raise FrozenRecordError(f"cannot assign to field {name!r}: {type(self).__name__} records are immutable")

    def __delattr__(self, name: str) -> None:
        raise FrozenRecordError(f"cannot delete field {name!r}: {type(self).__name__} records are immutable")

    def _key(self) -> tuple[Any, ...]:
        return tuple(self.__dict__[spec.name] for spec in self._fields if spec.compare)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        shown = ", ".join(f"{spec.name}={self.__dict__[spec.name]!r}" for spec in self._fields if spec.repr)
        return f"{type(self).__qualname__}({shown})"

    def __replace__(self, **changes: Any) -> Self:
        """A copy with some fields changed (``copy.replace`` on Python 3.13+)."""
        return type(self)(**{**{spec.name: self.__dict__[spec.name] for spec in self._fields}, **changes})

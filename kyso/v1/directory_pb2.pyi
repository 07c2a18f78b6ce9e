from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RouteKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROUTE_KIND_UNSPECIFIED: _ClassVar[RouteKind]
    ROUTE_KIND_LOCAL: _ClassVar[RouteKind]
    ROUTE_KIND_UP: _ClassVar[RouteKind]
    ROUTE_KIND_DOWN: _ClassVar[RouteKind]
    ROUTE_KIND_PEER: _ClassVar[RouteKind]
ROUTE_KIND_UNSPECIFIED: RouteKind
ROUTE_KIND_LOCAL: RouteKind
ROUTE_KIND_UP: RouteKind
ROUTE_KIND_DOWN: RouteKind
ROUTE_KIND_PEER: RouteKind

class Unit(_message.Message):
    __slots__ = ("code", "name", "parent_code", "level", "kind", "hub")
    CODE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PARENT_CODE_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    HUB_FIELD_NUMBER: _ClassVar[int]
    code: str
    name: str
    parent_code: str
    level: int
    kind: str
    hub: str
    def __init__(self, code: _Optional[str] = ..., name: _Optional[str] = ..., parent_code: _Optional[str] = ..., level: _Optional[int] = ..., kind: _Optional[str] = ..., hub: _Optional[str] = ...) -> None: ...

class GetUnitRequest(_message.Message):
    __slots__ = ("code",)
    CODE_FIELD_NUMBER: _ClassVar[int]
    code: str
    def __init__(self, code: _Optional[str] = ...) -> None: ...

class ListChildrenRequest(_message.Message):
    __slots__ = ("code", "page_size", "page_token")
    CODE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    code: str
    page_size: int
    page_token: str
    def __init__(self, code: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListChildrenResponse(_message.Message):
    __slots__ = ("units", "next_page_token")
    UNITS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    units: _containers.RepeatedCompositeFieldContainer[Unit]
    next_page_token: str
    def __init__(self, units: _Optional[_Iterable[_Union[Unit, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("query", "limit")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    query: str
    limit: int
    def __init__(self, query: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("units",)
    UNITS_FIELD_NUMBER: _ClassVar[int]
    units: _containers.RepeatedCompositeFieldContainer[Unit]
    def __init__(self, units: _Optional[_Iterable[_Union[Unit, _Mapping]]] = ...) -> None: ...

class RouteRequest(_message.Message):
    __slots__ = ("to_unit",)
    TO_UNIT_FIELD_NUMBER: _ClassVar[int]
    to_unit: str
    def __init__(self, to_unit: _Optional[str] = ...) -> None: ...

class RouteResponse(_message.Message):
    __slots__ = ("kind", "next_hub", "next_hub_address")
    KIND_FIELD_NUMBER: _ClassVar[int]
    NEXT_HUB_FIELD_NUMBER: _ClassVar[int]
    NEXT_HUB_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    kind: RouteKind
    next_hub: str
    next_hub_address: str
    def __init__(self, kind: _Optional[_Union[RouteKind, str]] = ..., next_hub: _Optional[str] = ..., next_hub_address: _Optional[str] = ...) -> None: ...

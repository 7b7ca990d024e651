"""A generic in-memory repository shared by every aggregate."""

from __future__ import annotations

from typing import Callable, Generic, Hashable, Iterator, TypeVar

from shop.errors import Conflict, NotFound

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class InMemoryRepository(Generic[K, V]):
    """Stores values by the key that ``key_of`` extracts from them."""

    kind = "record"

    def __init__(self, key_of: Callable[[V], K]) -> None:
        self._key_of = key_of
        self._items: dict[K, V] = {}

    def add(self, item: V) -> V:
        key = self._key_of(item)
        if key in self._items:
            raise Conflict(f"{self.kind} {key} already exists")
        self._items[key] = item
        print(f"[repo] added {self.kind} {key}")
        return item

    def save(self, item: V) -> V:
        """Replaces an existing record; raises NotFound if there is none."""
        key = self._key_of(item)
        if key not in self._items:
            raise NotFound(self.kind, key)
        self._items[key] = item
        print(f"[repo] saved {self.kind} {key}")
        return item

    def get(self, key: K) -> V:
        try:
            return self._items[key]
        except KeyError:
            raise NotFound(self.kind, key) from None

    def find(self, key: K) -> V | None:
        return self._items.get(key)

    def remove(self, key: K) -> V:
        item = self.get(key)
        del self._items[key]
        print(f"[repo] removed {self.kind} {key}")
        return item

    def filter(self, predicate: Callable[[V], bool]) -> list[V]:
        return [item for item in self._items.values() if predicate(item)]

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[V]:
        return iter(list(self._items.values()))

    def __contains__(self, key: object) -> bool:
        return key in self._items

"""The JSON bodies the API's actions take: bounded, unknown keys refused."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

#: A node or resource name is at most this long (the config's names are far shorter).
MAX_NAME = 253


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Empty(Body):
    pass


class OnNode(Body):
    node: str = Field(min_length=1, max_length=MAX_NAME)


class MaybeOnNode(Body):
    node: str | None = Field(default=None, min_length=1, max_length=MAX_NAME)


class Restart(Body):
    timeout: float = Field(default=60.0, gt=0, le=300)


class Maintenance(Body):
    off: bool = False


class Fence(Body):
    confirm: bool = False
    reboot: bool = False
    force: bool = False


#: A cluster file sent to ``config plan``/``apply`` (the stored-config bound is far above
#: any real file, and below the engine's 1 MiB value bound).
MAX_CONFIG = 512 * 1024


class NewConfig(Body):
    text: str = Field(min_length=1, max_length=MAX_CONFIG)

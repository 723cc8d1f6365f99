"""What every service's gRPC servicers share: the use cases they call and the context type
grpc.aio hands them. ServiceErrors that the use cases raise become gRPC statuses in the
framework's server, so a servicer only translates messages."""

from __future__ import annotations

from typing import ClassVar, Generic, TypeVar

import grpc

U = TypeVar("U")

Context = grpc.aio.ServicerContext[object, object]


class Servicer(Generic[U]):
    """Put first among a servicer's bases, before the generated one:
    `class UserServicer(Servicer[UserUseCases], user_pb2_grpc.UserServiceServicer)`."""

    # Methods a peer calls over and over all day (long polls, feeds): their access log
    # lines are DEBUG, like health probes'; they are still counted and traced.
    quiet_methods: ClassVar[tuple[str, ...]] = ()

    def __init__(self, usecases: U) -> None:
        self.usecases = usecases

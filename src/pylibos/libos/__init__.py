"""The LibOS: threads, pollable events, epoll, async and IPC workers, on the PAL alone."""

from __future__ import annotations

from ..pal import ShutDownError as ShutDownError
from ._epoll import Epoll as Epoll
from ._errno import oserror as oserror
from ._errno import to_errno as to_errno
from ._event import EVENT_KINDS as EVENT_KINDS
from ._event import PollableEvent as PollableEvent
from ._figures import PROPORTIONS as PROPORTIONS
from ._figures import PhaseStats as PhaseStats
from ._figures import ProfileSnapshot as ProfileSnapshot
from ._figures import Summary as Summary
from ._figures import proportions as proportions
from ._figures import summary as summary
from ._hook import Hook as Hook
from ._hook import install as install
from ._hook import installed as installed
from ._ipc import ECHO as ECHO
from ._ipc import THREADS as THREADS
from ._ipc import IpcClient as IpcClient
from ._ipc import IpcError as IpcError
from ._libos import LibOS as LibOS
from ._libos import default_events as default_events
from ._profile import PHASES as PHASES
from ._profile import SAMPLE_EVERY as SAMPLE_EVERY
from ._profile import Profile as Profile
from ._thread import LibOSThread as LibOSThread
from ._thread import ThreadFailed as ThreadFailed

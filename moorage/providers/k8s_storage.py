"""Growing an in-cluster service's volume: where the StorageClass allows it, never shrinking.

Why a module of its own: a StatefulSet's ``volumeClaimTemplates`` cannot change, so a
bigger volume means patching each existing PersistentVolumeClaim's request, which the API
server allows only when the claim's StorageClass has ``allowVolumeExpansion``. Everything
is checked before anything is patched, so a refused update changes nothing. Once patched,
the update waits until the claim's ``status.capacity`` (set by the volume resizer) reaches
the request.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from moorage.clients.kubernetes import KubeApi
from moorage.errors import PermanentError, TemporaryError

_QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)([KMGTP]i?)?$")
_FACTORS = {
    None: 1,
    "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50,
}  # fmt: skip


def gibibytes(quantity: str) -> float:
    """A Kubernetes storage quantity (``"10Gi"``, ``"500M"``) in GiB."""
    match = _QUANTITY.match(str(quantity).strip())
    if match is None:
        raise ValueError(f"not a storage quantity: {quantity!r}")
    return float(match.group(1)) * _FACTORS[match.group(2)] / 2**30


def _request(claim: Mapping[str, Any]) -> float:
    return gibibytes(claim["spec"]["resources"]["requests"]["storage"])


def grow_volumes(api: KubeApi, namespace: str, selector: dict[str, str], wanted_gb: int) -> None:
    """Make every claim of the instance request ``wanted_gb``; wait until they have it."""
    claims = api.list("persistentvolumeclaim", namespace, selector)
    to_grow = []
    for claim in claims:
        current = _request(claim)
        if wanted_gb < current:
            raise PermanentError(
                f"storage_gb can only grow: the volume {claim['metadata']['name']} has {current:g} GiB, "
                f"{wanted_gb} GiB were asked for; nothing was changed"
            )
        if wanted_gb > current:
            to_grow.append(claim)
    for claim in to_grow:
        class_name = claim["spec"].get("storageClassName") or ""
        storage_class = api.get("storageclass", "", class_name) if class_name else None
        if not (storage_class or {}).get("allowVolumeExpansion"):
            raise PermanentError(
                f"the volume {claim['metadata']['name']} cannot grow: its StorageClass "
                f"{class_name or '(none)'} does not allow volume expansion; nothing was changed"
            )
    for claim in to_grow:
        api.patch(
            "persistentvolumeclaim",
            namespace,
            claim["metadata"]["name"],
            {"spec": {"resources": {"requests": {"storage": f"{wanted_gb}Gi"}}}},
        )
    for claim in claims:
        capacity = ((claim.get("status") or {}).get("capacity") or {}).get("storage")
        if claim in to_grow or capacity is None or gibibytes(capacity) < wanted_gb:
            raise TemporaryError(2.0, f"waiting for the volume {claim['metadata']['name']} to grow")

"""Message templates registered through the control API, and Meta's checks of a template send.

A template is known by (name, language code) and declares how many `{{n}}` variables its body has; a send
must give exactly that many body parameters (132000 otherwise) and name a template that exists in that
language (132001 otherwise). Header and button parameters are not modelled.

Registration is per business number (Meta keeps templates per WhatsApp Business Account; the simulator's
numbers share a default WABA id, so keying by number keeps tests apart). A number with no registered
template at all accepts any template, which keeps the simulator usable without setup.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from wa_ray.simulator.cloud_api import errors
from wa_ray.simulator.cloud_api.errors import GraphError


@dataclass(frozen=True)
class Template:
    phone_number_id: str
    name: str
    language: str
    body_parameters: int
    category: str = "utility"


class Templates:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[tuple[str, str, str], Template] = {}

    def register(self, template: Template) -> None:
        with self._lock:
            self._items[(template.phone_number_id, template.name, template.language)] = template

    def list(self, phone_number_id: str | None = None) -> list[Template]:
        with self._lock:
            return [t for t in self._items.values() if phone_number_id in (None, t.phone_number_id)]

    def check(self, phone_number_id: str, template: dict[str, Any]) -> Template | None:
        """Raise 132001/132000 as Meta does; None when this number registered nothing (anything goes)."""
        with self._lock:
            registered = any(key[0] == phone_number_id for key in self._items)
            if not registered:
                return None
            language = (template.get("language") or {}).get("code", "")
            found = self._items.get((phone_number_id, str(template.get("name", "")), str(language)))
        if found is None:
            raise GraphError(errors.TEMPLATE_MISSING,
                             details=f"template name ({template.get('name')}) does not exist in {language}")
        given = body_parameter_count(template.get("components"))
        if given != found.body_parameters:
            raise GraphError(errors.TEMPLATE_PARAMS,
                             details=f"body: number of localizable_params ({given}) does not match the expected "
                                     f"number of params ({found.body_parameters})")
        return found


def body_parameter_count(components: Any) -> int:
    """The number of parameters of the `body` component (0 when there is none)."""
    if not isinstance(components, list):
        return 0
    for component in components:
        if isinstance(component, dict) and str(component.get("type", "")).lower() == "body":
            params = component.get("parameters")
            return len(params) if isinstance(params, list) else 0
    return 0

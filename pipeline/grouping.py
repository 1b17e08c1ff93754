"""Grouping sheet records into applications.

The new-facility sheets of one received item (a file, or an e-mail with its attachments) form one
set; each change notice is its own application; fax cover sheets and unknown pages join nothing.
A set that lacks sheets waits: a later item naming the same facility (sinks/records.py decides,
with `facility_identity`) completes it, whatever channel or day it comes by.
"""

from __future__ import annotations

from renraku import normalize
from renraku.validators import ApplicationView, SheetView
from renraku.validators.identity import FacilityIdentity

NEW_FACILITY_FORMS = ("usage_application", "staff_registration", "facility_pledge")
CHANGE_FORM = "staff_change"


def group_sheets(sheets: list[SheetView], required: tuple[str, ...] = NEW_FACILITY_FORMS) -> list[ApplicationView]:
    apps: list[ApplicationView] = []
    set_sheets = [s for s in sheets if s.form_id in required]
    if set_sheets:
        present = {s.form_id for s in set_sheets}
        apps.append(ApplicationView("new_facility", set_sheets, [f for f in required if f not in present]))
    for s in sheets:
        if s.form_id == CHANGE_FORM:
            apps.append(ApplicationView("staff_change", [s]))
    return apps


def facility_name(app: ApplicationView) -> str:
    """The facility as the sheets name it, in the order a person would look."""
    for form_id in ("usage_application", "staff_change", "staff_registration", "facility_pledge"):
        sheet = app.sheet(form_id)
        if sheet and sheet.values.get("facility_name"):
            return str(sheet.values["facility_name"])
    return ""


def facility_identity(app: ApplicationView) -> FacilityIdentity:
    usage = app.sheet("usage_application")
    return FacilityIdentity(
        name=facility_name(app),
        phone=normalize.digits(str(usage.get("phone"))) if usage else "",
        postal_code=normalize.digits(str(usage.get("postal_code"))) if usage else "",
    )

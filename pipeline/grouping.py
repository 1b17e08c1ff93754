"""Grouping sheet records into applications.

For now a received item (a file, or an e-mail with its attachments) is grouped on its own: its
new-facility sheets form one application, each change notice is its own application, fax cover
sheets and unknown pages join nothing. Grouping across items and days comes with the rules issue.
"""

from __future__ import annotations

from renraku.validators import ApplicationView, SheetView

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

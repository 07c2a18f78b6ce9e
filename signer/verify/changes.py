"""kyso's rules for what may change after a signature (ISO 32000 and Acrobat, not stricter).

pyHanko's difference analysis compares each later revision with the signed one, object by
object, and whitelists changes by rule; anything not whitelisted is a change of kind ``other``
(TOTAL-FAILED / FORBIDDEN_MODIFICATION). Its default policy is stricter than ISO 32000-1 §12.8.2.2
and Acrobat in two places that genuine documents from other tools hit, so kyso builds its own
policy from pyHanko's rules (docs/report-schema.md lists each rule by kind of change):

- a **new signature field, visible or not, after a certification signature** (P=2 or P=3):
  ISO 32000 permits "filling in forms … and signing" at P=2; a signature needs a field, and
  Acrobat adds visible ones. pyHanko only allows invisible ones after a certification;
- **the widget of the field being signed** may change the keys a signing tool writes into it
  besides the value and appearance: ``/M`` (poppler writes the signing time there), ``/Rect``
  and ``/MK`` (PDFBox resizes an existing field it signs, Acrobat rewrites the appearance
  characteristics). Only the field that receives its signature in that revision; any other
  field (signed before, or still empty) keeps pyHanko's rule: unchanged except its flags.

Everything else is pyHanko's default rules: catalogue, document information and XMP metadata
updates, DSS and document time-stamps (``lta-updates``); form filling (``form-filling``);
annotations (``annotations``, allowed by a P=3 certification); and page content, pages,
overlays, replaced or freed objects stay ``other``.
"""

from __future__ import annotations

from pyhanko.sign.diff_analysis import (
    CatalogModificationRule,
    DocInfoRule,
    DSSCompareRule,
    FormUpdatingRule,
    GenericFieldModificationRule,
    MetadataUpdateRule,
    ModificationLevel,
    ObjectStreamRule,
    SigFieldCreationRule,
    SigFieldModificationRule,
    StandardDiffPolicy,
    XrefStreamRule,
)
from pyhanko.sign.diff_analysis.constants import VALUE_UPDATE_KEYS

__all__ = ["KYSO_DIFF_POLICY", "SIGNED_FIELD_UPDATE_KEYS"]

SIGNED_FIELD_UPDATE_KEYS = VALUE_UPDATE_KEYS | frozenset({"/M", "/Rect", "/MK"})
"""Keys of a signature field (merged with its widget) that may change when it is signed."""

KYSO_DIFF_POLICY = StandardDiffPolicy(
    global_rules=[
        CatalogModificationRule(),  # type: ignore[no-untyped-call]
        DocInfoRule().as_qualified(ModificationLevel.LTA_UPDATES),
        XrefStreamRule().as_qualified(ModificationLevel.LTA_UPDATES),
        ObjectStreamRule().as_qualified(ModificationLevel.LTA_UPDATES),
        DSSCompareRule().as_qualified(ModificationLevel.LTA_UPDATES),
        MetadataUpdateRule().as_qualified(ModificationLevel.LTA_UPDATES),  # type: ignore[no-untyped-call]
    ],
    form_rule=FormUpdatingRule(
        field_rules=[
            SigFieldCreationRule(allow_new_visible_after_certify=True),  # type: ignore[no-untyped-call]
            SigFieldModificationRule(value_update_keys=SIGNED_FIELD_UPDATE_KEYS),
            GenericFieldModificationRule(),
        ],
    ),
)

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

- **new annotations** (:class:`NewAnnotationRule`): pyHanko's policy has no rule for the
  annotations a P=3 certification permits (it flags the page whose ``/Annots`` grew as a
  replaced object). kyso clears, at level ``annotations``, a page whose only change is new
  entries in ``/Annots`` that are new, non-widget annotations, with the new objects they use
  (appearance streams, pop-ups). Deleting or modifying existing annotations stays ``other``.

Everything else is pyHanko's default rules: catalogue, document information and XMP metadata
updates, DSS and document time-stamps (``lta-updates``); form filling (``form-filling``);
annotations (``annotations``, allowed by a P=3 certification); and page content, pages,
overlays, replaced or freed objects stay ``other``.
"""

from __future__ import annotations

from collections.abc import Iterator

from pyhanko.pdf_utils import generic, misc
from pyhanko.pdf_utils.reader import HistoricalResolver
from pyhanko.sign.diff_analysis import (
    CatalogModificationRule,
    DocInfoRule,
    DSSCompareRule,
    FormUpdatingRule,
    GenericFieldModificationRule,
    MetadataUpdateRule,
    ModificationLevel,
    ObjectStreamRule,
    QualifiedWhitelistRule,
    ReferenceUpdate,
    SigFieldCreationRule,
    SigFieldModificationRule,
    StandardDiffPolicy,
    SuspiciousModification,
    XrefStreamRule,
)
from pyhanko.sign.diff_analysis.commons import compare_dicts
from pyhanko.sign.diff_analysis.constants import VALUE_UPDATE_KEYS

__all__ = ["KYSO_DIFF_POLICY", "SIGNED_FIELD_UPDATE_KEYS", "NewAnnotationRule"]

_MAX_PAGE_TREE_DEPTH = 64


class NewAnnotationRule(QualifiedWhitelistRule):
    """Pages that only gained new non-widget annotations, at level ``annotations``.

    Walks the old and new page trees side by side (they must have the same kids: a changed
    page tree is left to pyHanko, which refuses it). For each page whose ``/Annots`` differs,
    the change is cleared only if no annotation was removed, every added one is an object
    that did not exist before, is a dictionary whose ``/Subtype`` is not ``/Widget`` (form
    fields are the form rules' business) and whose ``/P``, if any, is this page, and the page
    dictionary differs in nothing but ``/Annots``. Anything else is left unexplained, so
    pyHanko's crawler reports it.
    """

    def apply_qualified(
        self, old: HistoricalResolver, new: HistoricalResolver
    ) -> Iterator[tuple[ModificationLevel, ReferenceUpdate]]:
        try:
            old_pages = old.root.raw_get("/Pages")
            new_pages = new.root.raw_get("/Pages")
        except KeyError:
            return
        if not (
            isinstance(old_pages, generic.IndirectObject)
            and isinstance(new_pages, generic.IndirectObject)
        ):
            return
        for ref in self._walk(old, new, old_pages.reference, new_pages.reference, 0):
            yield ModificationLevel.ANNOTATIONS, ReferenceUpdate(ref)

    def _walk(
        self,
        old: HistoricalResolver,
        new: HistoricalResolver,
        old_ref: generic.Reference,
        new_ref: generic.Reference,
        depth: int,
    ) -> Iterator[generic.Reference]:
        if depth > _MAX_PAGE_TREE_DEPTH or old_ref != new_ref:
            return
        # Resolve in each revision explicitly: a Reference resolves in the revision it came from.
        old_node = old.get_object(old_ref)
        new_node = new.get_object(new_ref)
        if not isinstance(old_node, generic.DictionaryObject) or not isinstance(
            new_node, generic.DictionaryObject
        ):
            return
        if old_node.get("/Type") == "/Pages":
            old_kids = _refs(old_node.get("/Kids"))
            new_kids = _refs(new_node.get("/Kids"))
            if old_kids is None or old_kids != new_kids:
                return
            for kid in new_kids:
                yield from self._walk(old, new, kid, kid, depth + 1)
            return
        yield from self._page(old, new, new_ref, old_node, new_node)

    def _page(
        self,
        old: HistoricalResolver,
        new: HistoricalResolver,
        page_ref: generic.Reference,
        old_page: generic.DictionaryObject,
        new_page: generic.DictionaryObject,
    ) -> Iterator[generic.Reference]:
        old_annots = _refs(_resolved(old_page, "/Annots")) or []
        new_annots = _refs(_resolved(new_page, "/Annots"))
        if new_annots is None or set(new_annots) == set(old_annots):
            return
        if set(old_annots) - set(new_annots):
            return  # a removal: not cleared here
        added = [ref for ref in new_annots if ref not in set(old_annots)]
        approved: set[generic.Reference] = set()
        for ref in added:
            if not old.is_ref_unassignable(ref):
                return  # an old object number reused as an annotation
            annot = new.get_object(ref)
            if not isinstance(annot, generic.DictionaryObject):
                return
            if annot.get("/Subtype") == "/Widget" or "/FT" in annot:
                return
            parent = annot.raw_get("/P") if "/P" in annot else None
            if isinstance(parent, generic.IndirectObject) and parent.reference != page_ref:
                return
            approved.add(ref)
            approved |= {
                dep
                for dep in new.collect_dependencies(annot, since_revision=new.revision)
                if old.is_ref_unassignable(dep)
            }
        try:
            compare_dicts(old_page, new_page, frozenset({"/Annots"}))
        except SuspiciousModification:
            return
        approved.add(page_ref)
        annots_value = new_page.raw_get("/Annots")
        if isinstance(annots_value, generic.IndirectObject):
            old_value = old_page.raw_get("/Annots") if "/Annots" in old_page else None
            same = (
                isinstance(old_value, generic.IndirectObject)
                and old_value.reference == annots_value.reference
            )
            if not (same or old.is_ref_unassignable(annots_value.reference)):
                return
            approved.add(annots_value.reference)
        yield from approved


def _resolved(page: generic.DictionaryObject, key: str) -> generic.PdfObject | None:
    if key not in page:
        return None
    try:
        value: generic.PdfObject = page[key]
    except (misc.PdfReadError, KeyError):
        return None
    return value


def _refs(value: generic.PdfObject | None) -> list[generic.Reference] | None:
    """The references of an array of indirect objects, or None if it is anything else."""
    if not isinstance(value, generic.ArrayObject):
        return None
    refs = []
    for item in value:
        if not isinstance(item, generic.IndirectObject):
            return None
        refs.append(item.reference)
    return refs


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
        NewAnnotationRule(),
    ],
    form_rule=FormUpdatingRule(
        field_rules=[
            SigFieldCreationRule(allow_new_visible_after_certify=True),  # type: ignore[no-untyped-call]
            SigFieldModificationRule(value_update_keys=SIGNED_FIELD_UPDATE_KEYS),
            GenericFieldModificationRule(),
        ],
    ),
)

"""The unit directory: codes, CSV import/export, lookups, diacritic-free search, hubs, routes."""

from __future__ import annotations

import io

import pytest
import sqlalchemy as sa

from exchange import (
    DirectoryImportError,
    HubConfigError,
    InvalidUnitCode,
    NoRoute,
    UnitNotFound,
)
from exchange.codes import fold_name, validate_unit_code
from exchange.directory import Directory, RouteKind
from exchange.hubs import Hub, Topology
from tests.exchange.conftest import (
    G22,
    H41,
    H49,
    NOI_VU_NA,
    NOI_VU_QN,
    load_directory,
    migrate,
    topology,
)

HA_LONG = "000.00.30.H49"  # UBND thành phố Hạ Long (a district of 2020)
WARD_01 = "000.21.30.H49"  # UBND phường 01 (thành phố Hạ Long)
CLINIC_01 = "001.21.30.H49"  # Trạm Y tế phường 01, level 4


@pytest.fixture(scope="module")
def ro_directory(tmp_path_factory: pytest.TempPathFactory) -> Directory:
    """A read-only directory shared by the lookup tests (SQLite; writes are tested per backend)."""
    path = tmp_path_factory.mktemp("directory") / "units.db"
    return load_directory(sa.create_engine(f"sqlite:///{path}"))


@pytest.mark.parametrize("code", [G22, H49, "000.00.02.H41", CLINIC_01, "999.99.99.K01"])
def test_valid_codes_are_accepted(code: str) -> None:
    assert validate_unit_code(code) == code


@pytest.mark.parametrize(
    "code",
    [
        "",
        "000.00.00.h49",
        "00.00.00.H49",
        "000.00.00.H4",
        "000.00.00.49H",
        "000-00-00-H49",
        " 000.00.00.H49",
        "000.00.00.H49\n",
        "A00.00.00.H49",
    ],
)
def test_malformed_codes_are_refused_with_the_form_named(code: str) -> None:
    with pytest.raises(InvalidUnitCode, match="not of the form 000.00.00.H49"):
        validate_unit_code(code)


def test_names_fold_to_lowercase_without_diacritics() -> None:
    assert fold_name("Sở Nội vụ Quảng Ninh") == "so noi vu quang ninh"
    assert fold_name("ĐẢNG ỦY  Đông Triều") == "dang uy dong trieu"
    assert fold_name("Nghệ An") == fold_name("nghe an")


def test_import_reads_every_unit_with_its_parent_from_the_data(directory: Directory) -> None:
    units = list(directory.units())
    assert len(units) == 718
    assert sum(1 for u in units if u.code.endswith("H49")) == 713
    clinic = directory.get(CLINIC_01)
    assert clinic.parent_code == WARD_01
    assert clinic.level == 4
    assert clinic.kind == "commune-unit"
    assert directory.get(H49).parent_code is None


def test_children_are_listed_by_code(ro_directory: Directory) -> None:
    children = ro_directory.children(NOI_VU_QN)
    assert [c.code for c in children] == sorted(c.code for c in children)
    assert {c.parent_code for c in children} == {NOI_VU_QN}
    assert "000.01.02.H49" in {c.code for c in children}
    assert ro_directory.children(CLINIC_01) == []


def test_unknown_and_malformed_units_are_reported(ro_directory: Directory) -> None:
    with pytest.raises(UnitNotFound, match="000.00.99.H49 is not in the directory"):
        ro_directory.get("000.00.99.H49")
    with pytest.raises(InvalidUnitCode):
        ro_directory.get("H49")
    with pytest.raises(UnitNotFound):
        ro_directory.children("000.00.99.H49")


@pytest.mark.parametrize("term", ["Sở Nội vụ", "so noi vu", "SO NOI VU", "sở nội vụ"])
def test_search_finds_names_with_or_without_diacritics(ro_directory: Directory, term: str) -> None:
    found = ro_directory.search(term)
    assert {u.code for u in found} >= {NOI_VU_QN, NOI_VU_NA}
    assert all("noi vu" in fold_name(u.name) for u in found)


def test_search_ranks_higher_units_first_and_limits(ro_directory: Directory) -> None:
    found = ro_directory.search("ha long", limit=5)
    assert len(found) == 5
    assert found[0].code == HA_LONG
    assert ro_directory.search("   ") == []
    assert ro_directory.search("100%_") == []  # LIKE wildcards are literal


def test_export_then_import_round_trips(directory: Directory, tmp_path) -> None:
    out = io.StringIO()
    assert directory.export_csv(out) == 718
    second = Directory(
        migrate(sa.create_engine(f"sqlite:///{tmp_path / 'b.db'}")), topology=topology()
    )
    assert second.import_csv(io.StringIO(out.getvalue())) == 718
    assert list(second.units()) == list(directory.units())


def test_reimport_updates_names_and_hubs(directory: Directory) -> None:
    changed = (
        "code,name,parent_code,level,kind,hub\n"
        f"{HA_LONG},UBND TP Hạ Long (mới),000.00.00.H49,2,district,H49-HL\n"
    )
    directory.import_csv(io.StringIO(changed))
    unit = directory.get(HA_LONG)
    assert (unit.name, unit.hub) == ("UBND TP Hạ Long (mới)", "H49-HL")
    assert directory.search("ha long (moi)")[0].code == HA_LONG


def test_communes_may_hang_directly_under_a_province(directory: Directory) -> None:
    # Since 2025 there are no districts: re-parenting is data, the code does not change.
    moved = f"code,name,parent_code,level,kind\n{WARD_01},UBND phường 01,{H49},2,commune\n"
    directory.import_csv(io.StringIO(moved))
    assert directory.get(WARD_01).parent_code == H49
    assert WARD_01 in {c.code for c in directory.children(H49)}
    assert directory.get(CLINIC_01).parent_code == WARD_01


@pytest.mark.parametrize(
    ("csv_text", "message"),
    [
        ("code,name\n", "lacks column"),
        ("code,name,parent_code,level,kind\n000.00.00.X1,A,,1,x\n", "line 2: unit code"),
        (
            "code,name,parent_code,level,kind\n000.00.01.X01,A,000.00.00.X99,2,x\n",
            "line 2: parent 000.00.00.X99 of unit 000.00.01.X01 is neither",
        ),
        ("code,name,parent_code,level,kind\n000.00.01.X01,A,,one,x\n", "level of unit"),
        ("code,name,parent_code,level,kind\n000.00.01.X01,,,1,x\n", "has no name"),
        (
            "code,name,parent_code,level,kind\n000.00.01.X01,A,,1,x\n000.00.01.X01,B,,1,x\n",
            "line 3: unit 000.00.01.X01 appears twice",
        ),
        (
            "code,name,parent_code,level,kind\n000.00.01.X01,A,000.00.02.X01,2,x\n"
            "000.00.02.X01,B,000.00.01.X01,2,x\n",
            "parent cycle",
        ),
        ("code,name,parent_code,level,kind\n000.00.01.X01,A,000.00.01.X01,2,x\n", "names itself"),
    ],
)
def test_bad_csv_is_refused_whole_with_the_line(
    directory: Directory, csv_text: str, message: str
) -> None:
    with pytest.raises(DirectoryImportError, match=message):
        directory.import_csv(io.StringIO(csv_text))
    with pytest.raises(UnitNotFound):
        directory.get("000.00.01.X01")


# -- hubs and routes --------------------------------------------------------------------------


def test_units_inherit_the_hub_of_their_nearest_ancestor(ro_directory: Directory) -> None:
    assert ro_directory.serving_hub(CLINIC_01) == "H49"
    assert ro_directory.serving_hub(NOI_VU_NA) == "H41"
    assert ro_directory.serving_hub(G22) == "G22"


@pytest.mark.parametrize(
    ("from_hub", "to_unit", "kind", "next_hub"),
    [
        ("H49", CLINIC_01, RouteKind.LOCAL, None),
        ("H49", NOI_VU_NA, RouteKind.UP, "G22"),  # no peer: through the centre
        ("H49", G22, RouteKind.UP, "G22"),
        ("G22", NOI_VU_NA, RouteKind.DOWN, "H41"),
        ("G22", WARD_01, RouteKind.DOWN, "H49"),
        ("G22", G22, RouteKind.LOCAL, None),
        ("H41", NOI_VU_QN, RouteKind.UP, "G22"),
    ],
)
def test_routes_in_the_three_hub_tree(
    ro_directory: Directory, from_hub: str, to_unit: str, kind: RouteKind, next_hub: str | None
) -> None:
    decision = ro_directory.route(from_hub=from_hub, to_unit=to_unit)
    assert (decision.kind, decision.next_hub) == (kind, next_hub)


def test_peers_are_used_across_the_tree(db_engine: sa.Engine) -> None:
    directory = load_directory(db_engine, topo=topology(peers=True))
    decision = directory.route(from_hub="H49", to_unit=NOI_VU_NA)
    assert (decision.kind, decision.next_hub, decision.serving_hub) == (
        RouteKind.PEER,
        "H41",
        "H41",
    )
    assert directory.route(from_hub="H49", to_unit=G22).kind is RouteKind.UP


def test_a_sub_hub_serves_its_subtree_at_any_depth(db_engine: sa.Engine) -> None:
    topo = Topology([*topology().hubs(), Hub(id="H49-HL", root_unit=HA_LONG, parent_hub="H49")])
    directory = load_directory(db_engine, topo=topo)
    assert directory.serving_hub(CLINIC_01) == "H49-HL"
    assert directory.route(from_hub="G22", to_unit=CLINIC_01).next_hub == "H49"
    down = directory.route(from_hub="H49", to_unit=CLINIC_01)
    assert (down.kind, down.next_hub) == (RouteKind.DOWN, "H49-HL")
    assert directory.route(from_hub="H49-HL", to_unit=NOI_VU_QN).kind is RouteKind.UP
    assert directory.route(from_hub="H49-HL", to_unit=CLINIC_01).kind is RouteKind.LOCAL


def test_explicit_hub_column_overrides_inheritance(directory: Directory) -> None:
    directory.import_csv(
        io.StringIO(
            f"code,name,parent_code,level,kind,hub\n{NOI_VU_QN},Sở Nội vụ,{H49},2,department,H41\n"
        )
    )
    assert directory.serving_hub("000.01.02.H49") == "H41"
    assert directory.route(from_hub="G22", to_unit="000.01.02.H49").next_hub == "H41"


def test_units_no_hub_serves_have_no_route(directory: Directory) -> None:
    directory.import_csv(
        io.StringIO("code,name,parent_code,level,kind\n000.00.00.K01,HĐND,,1,council\n")
    )
    with pytest.raises(NoRoute, match="no hub serves unit 000.00.00.K01"):
        directory.route(from_hub="H49", to_unit="000.00.00.K01")
    with pytest.raises(UnitNotFound):
        directory.route(from_hub="H49", to_unit="000.00.98.H49")


def test_the_top_hub_without_a_way_has_no_route(db_engine: sa.Engine) -> None:
    topo = Topology([Hub(id="H49", root_unit=H49), Hub(id="H41", root_unit=H41)])
    directory = load_directory(db_engine, topo=topo)
    with pytest.raises(NoRoute, match="hub H49 has no parent and no peer towards hub H41"):
        directory.route(from_hub="H49", to_unit=NOI_VU_NA)


@pytest.mark.parametrize(
    ("hubs", "message"),
    [
        ([Hub(id="A", root_unit=H49), Hub(id="A", root_unit=H41)], "configured twice"),
        ([Hub(id="A", root_unit=H49), Hub(id="B", root_unit=H49)], "both claim root unit"),
        ([Hub(id="A", root_unit=H49, parent_hub="Z")], "unknown parent hub 'Z'"),
        ([Hub(id="A", root_unit=H49, peers=("Z",))], "unknown peer hub 'Z'"),
        (
            [
                Hub(id="A", root_unit=H49, parent_hub="B"),
                Hub(id="B", root_unit=H41, parent_hub="A"),
            ],
            "cycle",
        ),
    ],
)
def test_inconsistent_topologies_are_refused(hubs: list[Hub], message: str) -> None:
    with pytest.raises(HubConfigError, match=message):
        Topology(hubs)


def test_hub_root_must_be_a_unit_code() -> None:
    with pytest.raises(InvalidUnitCode):
        Hub(id="A", root_unit="H49")

"""Writes the raw files of the bad-input corpus (tests/bad_inputs/<case>/); cases.yaml
says what each case must give. The files are committed: run this only to change them.

    python tests/bad_inputs/make_corpus.py
"""

from __future__ import annotations

import gzip
import io
import json
import shutil
import unicodedata
from pathlib import Path

HERE = Path(__file__).parent
T0 = 1_600_000_000  # seconds since the epoch (September 2020)


def clicks(n_users: int = 40, per_user: int = 4, n_items: int = 12, t0: int = T0
           ) -> list[tuple[str, str, int]]:
    """(user, item, time) rows: every item clicked several times, sessions of per_user."""
    rows = []
    for u in range(n_users):
        for k in range(per_user):
            rows.append((f"u{u + 1}", f"i{(u + 2 * k) % n_items + 1}", t0 + 3600 * u + 60 * k))
    return rows


def items(n_items: int = 12, fmt: str = "i{}") -> list[tuple[str, str]]:
    return [(fmt.format(i + 1), f"Product {i + 1}") for i in range(n_items)]


def csv_text(header: str, rows) -> str:
    return header + "\n" + "".join(",".join(str(f) for f in row) + "\n" for row in rows)


def write(case: str, files: dict[str, str | bytes]) -> None:
    folder = HERE / case
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir()
    for name, content in files.items():
        data = content.encode("utf-8") if isinstance(content, str) else content
        (folder / name).write_bytes(data)


def gz(data: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as f:
        f.write(data)
    return buf.getvalue()


INTER = "user_id,item_id,timestamp"
ITEMS = "item_id,title"


def good(**changes) -> dict[str, str]:
    files = {"interactions.csv": csv_text(INTER, clicks()), "items.csv": csv_text(ITEMS, items())}
    files.update(changes)
    return files


def lines_of(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def main() -> None:
    # ------------------------------------------------ the reliability issue's cases
    big = lines_of(csv_text(INTER, clicks(n_users=120, n_items=30)))  # 481 lines
    assert len(big) == 481
    big[101] = big[101].replace(",i", ',"i', 1)  # line 102: u26,"i..,t — a stray quote
    write("stray_quote", {"interactions.csv": "".join(big),
                          "items.csv": csv_text(ITEMS, items(30))})

    lines = lines_of(csv_text(INTER, clicks()))
    lines[6] = 'u2,"i4\n'  # a legitimately quoted newline: the record spans lines 7-8
    lines[7] = 'part 2",1600003720\n'
    write("quoted_newline_in_interactions", good(**{"interactions.csv": "".join(lines)}))

    lines = lines_of(csv_text(INTER, clicks(n_users=50)))  # 200 data lines
    for i in range(10, 201, 10):  # 20 of them lose their timestamp field
        lines[i] = lines[i].rsplit(",", 1)[0] + "\n"
    write("skip_rate", good(**{"interactions.csv": "".join(lines)}))

    item_lines = lines_of(csv_text(ITEMS, items(30)))  # 31 lines
    item_lines[4] = item_lines[4].replace(",", ',"', 1)  # line 5: i4,"Product 4
    write("items_unclosed_quote", {"interactions.csv": csv_text(INTER, clicks(n_items=30)),
                                   "items.csv": "".join(item_lines)})

    write("items_quoted_newline", good(**{"items.csv": csv_text(ITEMS, items()[:3]) + (
        'i4,"Shampoo\nfor dry hair, 250 ml"\n') + csv_text(ITEMS, items()[4:]).split("\n", 1)[1]}))

    write("ids_never_match", good(**{"items.csv": csv_text(ITEMS, items(fmt="i{:02d}"))}))
    write("ids_partly_match", good(**{"items.csv": csv_text(ITEMS, items()[:7])}))

    bom = "\ufeff"
    write("utf8_bom", good(**{"interactions.csv": bom + csv_text(INTER, clicks()),
                              "items.csv": bom + csv_text(ITEMS, items())}))

    mixed = [(u, i, t * 1000 if n % 2 else t) for n, (u, i, t) in enumerate(clicks())]
    write("milliseconds_mixed", good(**{"interactions.csv": csv_text(INTER, mixed)}))
    write("milliseconds_all", good(**{"interactions.csv": csv_text(
        INTER, [(u, i, t * 1000) for u, i, t in clicks()])}))
    zeros = [(u, i, 0 if u == "u3" else t) for u, i, t in clicks()]
    write("zero_timestamps", good(**{"interactions.csv": csv_text(INTER, zeros)}))

    nfc, nfd = unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café")
    assert nfc != nfd
    accents = [(u, (nfd if n % 2 else nfc) if i == "i1" else i, t)
               for n, (u, i, t) in enumerate(clicks())]
    write("nfc_nfd_ids", good(**{
        "interactions.csv": csv_text(INTER, accents),
        "items.csv": csv_text(ITEMS, [(nfd if i == "i1" else i, x) for i, x in items()])}))

    nul = clicks()
    nul[2] = ("u1\x00", nul[2][1], nul[2][2])  # line 4
    write("nul_in_user_id", good(**{"interactions.csv": csv_text(INTER, nul)}))
    write("nul_in_item_file", good(**{"items.csv": csv_text(
        ITEMS, [("i2\x00" if i == "i2" else i, x) for i, x in items()])}))  # line 3

    # ------------------------------------------------ already handled before
    write("empty_file", good(**{"interactions.csv": ""}))
    write("header_only", good(**{"interactions.csv": INTER + "\n"}))
    write("wrong_delimiter", good(**{
        "interactions.csv": csv_text(INTER, clicks()).replace(",", ";")}))
    write("non_utf8", good(**{"items.csv": csv_text(ITEMS, items()).encode().replace(
        b"Product 2", b"Caf\xe9 2")}))  # line 3, latin-1
    write("utf16_file", good(**{"interactions.csv": csv_text(INTER, clicks()).encode("utf-16")}))
    data = gz(csv_text(INTER, clicks(n_users=200)).encode())
    write("truncated_gzip", good(**{"interactions.csv.gz": data[: len(data) // 2]}))
    dup = clicks()
    dup.append(dup[5])  # line 162 repeats line 7
    write("duplicate_rows", good(**{"interactions.csv": csv_text(INTER, dup)}))
    write("conflicting_texts", good(**{"items.csv": csv_text(
        ITEMS, items() + [("i2", "Another product")])}))  # line 14 against line 3
    write("everything_filtered", good(**{"interactions.csv": csv_text(
        INTER, clicks(per_user=1))}))
    bad_field = clicks()
    write("wrong_field_count", good(**{"interactions.csv": csv_text(
        INTER, bad_field[:3] + [bad_field[3][:2]] + bad_field[4:])}))  # line 5
    write("time_not_a_number", good(**{"interactions.csv": csv_text(
        INTER, bad_field[:3] + [(*bad_field[3][:2], "2020-09-13")] + bad_field[4:])}))
    positions = [(u, i, k % 4) for k, (u, i, _) in enumerate(clicks())]
    positions.append(("u1", "i9", 1))  # line 162: a second item at u1's position 1
    write("two_items_one_position", good(**{
        "interactions.csv": csv_text("user_id,item_id,position", positions)}))

    reviews = "".join(json.dumps({"reviewerID": u, "asin": i, "unixReviewTime": t}) + "\n"
                      for u, i, t in clicks())
    meta = "".join(repr({"asin": i, "title": x}) + "\n" for i, x in items())
    write("amazon_bom", {"reviews.json.gz": gz(("\ufeff" + reviews).encode()),
                         "meta.json.gz": gz(meta.encode())})
    broken = lines_of(reviews)
    broken[2] = broken[2][:-3] + "\n"  # line 3 loses its closing brace
    write("amazon_bad_json", {"reviews.json.gz": gz("".join(broken).encode()),
                              "meta.json.gz": gz(meta.encode())})
    write("movielens_wrong_separator", {
        "ratings.dat": "".join(f"{u[1:]}\t{i[1:]}\t5\t{t}\n" for u, i, t in clicks()),
        "movies.dat": "".join(f"{i[1:]}::{x}::Drama\n" for i, x in items())})
    write("recbole_bad_header", {
        "x.inter": "user_id:token\titem_id:token\ttimestamp\n"
                   + "".join(f"{u}\t{i}\t{t}\n" for u, i, t in clicks()),
        "x.item": "item_id:token\ttitle:token_seq\n"
                  + "".join(f"{i}\t{x}\n" for i, x in items())})
    write("good", good())


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Writes the dnf output fixtures with dnf's own format strings.

dnf is not installable on the Debian machines patchring is developed on, so
these files are not recordings: they are the output dnf 4 (and dnf 5 for
advisory lists) prints for the package and advisory data below, produced
with the format code copied from dnf's sources (see README.md). The data is
modelled on RHEL 9.4 errata of November 2024.
"""

UPDATES = [  # name, arch, evr, repo
    ("bind-libs", "x86_64", "32:9.16.23-18.el9_4.6", "appstream"),
    ("bind-license", "noarch", "32:9.16.23-18.el9_4.6", "appstream"),
    ("kernel", "x86_64", "5.14.0-427.42.1.el9_4", "baseos"),
    ("kernel-core", "x86_64", "5.14.0-427.42.1.el9_4", "baseos"),
    ("kernel-modules-core", "x86_64", "5.14.0-427.42.1.el9_4", "baseos"),
    ("NetworkManager", "x86_64", "1:1.46.0-19.el9_4", "baseos"),
    ("NetworkManager-libnm", "x86_64", "1:1.46.0-19.el9_4", "baseos"),
    ("python3-perf", "x86_64", "5.14.0-427.42.1.el9_4", "baseos"),
    ("tzdata", "noarch", "2024b-2.el9", "baseos"),
    ("google-noto-sans-cjk-ttc-fonts-extra-long-name-for-wrapping", "noarch", "20230817-2.el9", "appstream"),
    ("vim-minimal", "x86_64", "2:8.2.2637-21.el9_4.1", "baseos"),
]
OBSOLETES = [  # (new, installed)
    (("grub2-tools-efi", "x86_64", "1:2.06-82.el9_4", "baseos"),
     ("grub2-tools-efi-legacy", "x86_64", "1:2.06-77.el9", "@anaconda")),
]


def fmt_columns(cols):
    """dnf.cli.output.Output.fmtColumns for left-aligned columns without
    highlighting (stdout is not a terminal)."""
    msg, total, data = "", 0, []
    for val, width in cols[:-1]:
        if len(val) <= width:
            msg += "%s%s "
            data.extend([val, " " * (width - len(val))])
        else:
            msg += "%s\n" + " " * (total + width + 1)
            data.append(val)
        total += width + 1
    val, width = cols[-1]
    msg += "%s"
    data.append(val + " " * max(0, width - len(val)))  # fill_exact_width
    return msg % tuple(data)


def check_update():
    # Column widths as _list_cmd_calc_columns gives them on an 80-column
    # terminal for this data: 38, 33, 9 (plus the separating spaces).
    w = (38, 33, 9)
    out = ["Last metadata expiration check: 0:42:17 ago on Tue 12 Nov 2024 09:14:03 AM UTC.", ""]
    for n, a, evr, repo in sorted(UPDATES):
        out.append(fmt_columns([(n + "." + a, w[0]), (evr, w[1]), (repo, w[2])]))
    out.append("Obsoleting Packages")
    for new, old in OBSOLETES:
        out.append(fmt_columns([(new[0] + "." + new[1], w[0]), (new[2], w[1]), (new[3], w[2])]))
        out.append(fmt_columns([("    " + old[0] + "." + old[1], w[0]), (old[2], w[1]), (old[3], w[2])]))
    out.append("Security: kernel-core-5.14.0-427.40.1.el9_4.x86_64 is an installed security update")
    out.append("Security: kernel-core-5.14.0-427.37.1.el9_4.x86_64 is the currently running version")
    return "\n".join(out) + "\n"


ADVISORIES = [  # id, type, severity, updated, title, cves, bugs, packages (nevra)
    ("RHSA-2024:9185", "security", "Important", "2024-11-12 00:00:00",
     "Important: bind security update", ["CVE-2024-1737", "CVE-2024-1975"],
     ["2298893 - CVE-2024-1737 bind: BIND's database will be slow if a very large number of RRs exist at the same name",
      "2298901 - CVE-2024-1975 bind: SIG(0) can be used to exhaust CPU resources"],
     ["bind-libs-32:9.16.23-18.el9_4.6.x86_64", "bind-license-32:9.16.23-18.el9_4.6.noarch"]),
    ("RHSA-2024:8856", "security", "Moderate", "2024-11-05 00:00:00",
     "Moderate: kernel security update", ["CVE-2024-26640", "CVE-2024-36971"],
     ["2273242 - CVE-2024-26640 kernel: tcp: add sanity checks to rx zerocopy"],
     ["kernel-5.14.0-427.42.1.el9_4.x86_64", "kernel-core-5.14.0-427.42.1.el9_4.x86_64",
      "kernel-modules-core-5.14.0-427.42.1.el9_4.x86_64", "python3-perf-5.14.0-427.42.1.el9_4.x86_64"]),
    ("RHSA-2024:9474", "security", None, "2024-11-13 00:00:00",
     "vim security update", ["CVE-2021-3903"], [],
     ["vim-minimal-2:8.2.2637-21.el9_4.1.x86_64"]),
    ("RHBA-2024:8810", "bugfix", "None", "2024-11-04 00:00:00",
     "NetworkManager bug fix update", [], ["2303178 - NM does not restore routes after link flap"],
     ["NetworkManager-1:1.46.0-19.el9_4.x86_64", "NetworkManager-libnm-1:1.46.0-19.el9_4.x86_64"]),
    ("RHEA-2024:8790", "enhancement", "None", "2024-11-01 00:00:00",
     "tzdata enhancement update", [], [], ["tzdata-2024b-2.el9.noarch"]),
]

SEC2LABEL = {"Critical": "Critical/Sec.", "Important": "Important/Sec.", "Moderate": "Moderate/Sec.", "Low": "Low/Sec."}


def updateinfo_list(only_security, verbose=False, mark_all=False):
    """UpdateInfoCommand.display_list (dnf 4.14+)."""
    rows = {}
    for aid, typ, sev, upd, _t, _c, _b, pkgs in ADVISORIES:
        if only_security and typ != "security":
            continue
        for nevra in pkgs:
            inst = mark_all and nevra.startswith("kernel-core")
            rows.setdefault((nevra, inst, upd), {})[aid] = (typ, sev)
    advlist, idw, tlw, nw = [], 0, 0, 0
    for (nevra, inst, upd), id2type in sorted(rows.items(), key=lambda x: x[0]):
        nw = max(nw, len(nevra))
        for aid, (typ, sev) in id2type.items():
            idw = max(idw, len(aid))
            label = SEC2LABEL.get(sev, "Unknown/Sec.") if typ == "security" else typ
            tlw = max(tlw, len(label))
            mark = "" if not mark_all else ("i " if inst else "  ")
            advlist.append((mark, aid, label, nevra, upd))
    out = ["Last metadata expiration check: 0:42:17 ago on Tue 12 Nov 2024 09:14:03 AM UTC."]
    for mark, aid, label, nevra, upd in advlist:
        if verbose:
            out.append("%s%-*s %-*s %-*s %s" % (mark, idw, aid, tlw, label, nw, nevra, upd))
        else:
            out.append("%s%-*s %-*s %s" % (mark, idw, aid, tlw, label, nevra))
    return "\n".join(out) + "\n"


DESCRIPTIONS = {
    "RHSA-2024:9185": "The Berkeley Internet Name Domain (BIND) is an implementation of the Domain Name System\n(DNS) protocols.\n\nSecurity Fix(es):\n\n* bind: BIND's database will be slow if a very large number of RRs exist at the same name (CVE-2024-1737)",
    "RHSA-2024:8856": "The kernel packages contain the Linux kernel, the core of any Linux operating system.\n\nSecurity Fix(es):\n\n* kernel: tcp: add sanity checks to rx zerocopy (CVE-2024-26640)",
}


def updateinfo_info(ids, new_format=True):
    """UpdateInfoCommand.display_info: dnf >= 4.7 ('%*s%s: %s'); older
    dnf 4 (RHEL 8.0-8.4) printed '%*s : %s'."""
    labels = ("Update ID", "Type", "Updated", "Bugs", "CVEs", "Description", "Severity")
    width = max(len(l) for l in labels)
    blocks = []
    for aid, typ, sev, upd, title, cves, bugs, _p in ADVISORIES:
        if aid not in ids:
            continue
        attrs = [[aid], [typ], [upd], sorted(bugs), sorted(cves),
                 DESCRIPTIONS.get(aid, "").splitlines(), [sev]]
        lines = ["=" * 79, "  " + title, "=" * 79]
        for label, atr in zip(labels, attrs):
            if atr in (None, [None]):
                continue
            for i, line in enumerate(atr):
                key = label if i == 0 else ""
                if new_format:
                    lines.append("%*s%s: %s" % (width - len(key), "", key, line))
                else:
                    lines.append("%*s : %s" % (width, key, line))
        blocks.append("\n".join(lines))
    if new_format:
        return "\n\n".join(sorted(blocks, key=lambda x: x.lower())) + "\n"
    return "\n\n".join(blocks) + "\n\n"


def dnf5_advisory_list():
    """dnf5 advisory list --security: a libsmartcols table (Name, Type,
    Severity, Package, Issued), columns separated by one space, cells
    padded to the column width, sorted by name."""
    rows = [("Name", "Type", "Severity", "Package", "Issued")]
    data = [
        ("FEDORA-2024-3a2b9c1d7e", "security", "Important", "curl-8.6.0-10.fc40.x86_64", "2024-11-08 01:12:41"),
        ("FEDORA-2024-3a2b9c1d7e", "security", "Important", "libcurl-8.6.0-10.fc40.x86_64", "2024-11-08 01:12:41"),
        ("FEDORA-2024-9f0e1d2c3b", "security", "Moderate", "python3-3.12.7-1.fc40.x86_64", "2024-10-29 02:04:10"),
        ("FEDORA-2024-b71c0a4e55", "security", "", "expat-2.6.4-1.fc40.x86_64", "2024-11-12 01:51:03"),
    ]
    rows += sorted(data)
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    out = []
    for r in rows:
        cells = [r[i].ljust(widths[i]) if i < 3 else r[i].rjust(widths[i]) for i in range(5)]
        out.append(" ".join(cells).rstrip())
    return "Updating and loading repositories:\nRepositories loaded.\n" + "\n".join(out) + "\n"


if __name__ == "__main__":
    files = {
        "rhel9-check-update.txt": check_update(),
        "rhel9-updateinfo-list-security.txt": updateinfo_list(True),
        "rhel9-updateinfo-list-all-verbose.txt": updateinfo_list(False, verbose=True, mark_all=True),
        "rhel9-updateinfo-info.txt": updateinfo_info({"RHSA-2024:9185", "RHSA-2024:8856", "RHSA-2024:9474"}),
        "rhel8-updateinfo-info.txt": updateinfo_info({"RHSA-2024:9185"}, new_format=False),
        "fedora40-dnf5-advisory-list-security.txt": dnf5_advisory_list(),
    }
    for name, text in files.items():
        with open(name, "w") as f:
            f.write(text)

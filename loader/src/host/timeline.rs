//! Where boot time goes: the ROM flow's stages from the times of its console lines and the
//! fabric's events ([`stages`]), and an SVG timeline of them ([`svg`]) — plain SVG text, no
//! dependencies.

use std::format;
use std::string::{String, ToString};
use std::vec::Vec;

use hca::wire::smp::PortState;
use hca_sim::{FabricEvent, FabricEventKind, NodeId};

use crate::sim::Timing;

/// One stage of a boot, in simulated time (ns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// What (`probe`, `link wait port 1`, `SA join`, `DHCP`, `login`, `boot blocks`, `iBFT`).
    pub name: String,
    /// Start (ns).
    pub start_ns: u64,
    /// End (ns).
    pub end_ns: u64,
}

impl Stage {
    /// How long, in ms.
    pub fn ms(&self) -> f64 {
        (self.end_ns.saturating_sub(self.start_ns)) as f64 / 1e6
    }
}

/// The stages of one node's boot: the probe; per port tried, the link wait (to ACTIVE, from
/// the fabric's events) and, for the port that came up, the SA join (ACTIVE to the broadcast
/// group joined); DHCP; the login; the boot blocks; the iBFT.
pub fn stages(t: &Timing, events: &[FabricEvent], node: NodeId) -> Vec<Stage> {
    let mut out = Vec::new();
    let mut at = t.start_ns;
    let mut push = |name: &str, start: u64, end: u64| {
        out.push(Stage {
            name: name.to_string(),
            start_ns: start,
            end_ns: end.max(start),
        });
    };
    if let Some(p) = t.probe_end_ns {
        push("probe", at, p);
        at = p;
    }
    for (lt, line) in &t.lines {
        let lt = *lt;
        if let Some(rest) = line.strip_prefix("port ") {
            let port: u8 = rest
                .split(':')
                .next()
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            let wait = format!("link wait port {port}");
            let active = events.iter().rev().find_map(|e| match e.kind {
                FabricEventKind::PortState {
                    node: n,
                    port: p,
                    state,
                } if n == node
                    && p == port
                    && state == PortState::ACTIVE
                    && (at..=lt).contains(&e.at_ns) =>
                {
                    Some(e.at_ns)
                }
                _ => None,
            });
            match active {
                Some(a) if line.contains("ACTIVE;") => {
                    push(&wait, at, a);
                    push("SA join", a, lt);
                }
                _ => push(&wait, at, lt),
            }
        } else if line.starts_with("DHCP:") {
            push("DHCP", at, lt);
        } else if line.starts_with("iSCSI: logged in") {
            push("login", at, lt);
        } else if line.starts_with("iSCSI: LUN") {
            push("boot blocks", at, lt);
        } else if line.starts_with("iBFT:") {
            push("iBFT", at, lt);
        } else {
            continue;
        }
        at = lt;
    }
    out
}

/// The stages as one console line: `stages: probe 1.2 ms, link wait port 1 5000.0 ms, ...`.
pub fn summary(stages: &[Stage]) -> String {
    let mut s = String::from("stages:");
    for (i, st) in stages.iter().enumerate() {
        s.push_str(if i == 0 { " " } else { ", " });
        s.push_str(&format!("{} {:.1} ms", st.name, st.ms()));
    }
    s
}

/// The `sysctl net.isboot.timing` leaves of the module's boot thread, in the order it reaches
/// them, with the names its stages get on the timeline.
pub const MODULE_STAGES: [(&str, &str); 5] = [
    ("interface_ms", "isboot.ko: interface"),
    ("address_ms", "isboot.ko: address"),
    ("login_ms", "isboot.ko: login"),
    ("disk_ms", "isboot.ko: disk"),
    ("hold_released_ms", "isboot.ko: hold released"),
];

/// The module's stages from `sysctl net.isboot.timing` output (`net.isboot.timing.NAME: MS`
/// lines, in any order, among others), placed from `handoff_ns` on: each stage runs from the
/// previous one's end (the first from the hand-off) to the time the module reached it. The
/// module's times are real milliseconds since its boot thread started, so the lane shows
/// real time after the hand-off, not simulated time. Stages not reached (-1) end the list;
/// a missing or unreadable leaf, or times going backwards, is an error.
pub fn module_stages(sysctl: &str, handoff_ns: u64) -> Result<Vec<Stage>, String> {
    let mut out = Vec::new();
    let mut at = handoff_ns;
    for (leaf, name) in MODULE_STAGES {
        let key = format!("net.isboot.timing.{leaf}: ");
        let v = sysctl
            .lines()
            .find_map(|l| l.strip_prefix(key.as_str()))
            .ok_or_else(|| format!("no net.isboot.timing.{leaf} in the module's sysctl output"))?;
        let ms: i64 = v
            .trim()
            .parse()
            .map_err(|_| format!("net.isboot.timing.{leaf}: {v:?} is not a number"))?;
        if ms < 0 {
            break;
        }
        let end = handoff_ns.saturating_add((ms as u64).saturating_mul(1_000_000));
        if end < at {
            return Err(format!(
                "net.isboot.timing.{leaf} ({ms} ms) is before the stage it follows"
            ));
        }
        out.push(Stage {
            name: name.to_string(),
            start_ns: at,
            end_ns: end,
        });
        at = end;
    }
    Ok(out)
}

/// A stage's colour (fixed per name, so rows read alike).
fn colour(name: &str) -> &'static str {
    match name {
        n if n.starts_with("isboot.ko: ") => "#16a085",
        "probe" => "#9e9e9e",
        "SA join" => "#8e44ad",
        "DHCP" => "#2e86c1",
        "login" => "#d35400",
        "boot blocks" => "#27ae60",
        "iBFT" => "#c0392b",
        n if n.starts_with("link wait") => "#f1c40f",
        _ => "#34495e",
    }
}

/// `&`, `<`, `>` and `"` escaped for SVG text and attributes.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            c => o.push(c),
        }
    }
    o
}

/// A tick step (1, 2 or 5 times a power of ten) giving about 8 ticks over `span` ms.
fn tick_step(span: f64) -> f64 {
    let raw = (span / 8.0).max(1e-3);
    let p = libm_floor_log10(raw);
    let base = 10f64.powi(p);
    for m in [1.0, 2.0, 5.0, 10.0] {
        if base * m >= raw {
            return base * m;
        }
    }
    base * 10.0
}

fn libm_floor_log10(x: f64) -> i32 {
    let mut p = 0i32;
    let mut v = x;
    while v >= 10.0 {
        v /= 10.0;
        p += 1;
    }
    while v < 1.0 {
        v *= 10.0;
        p -= 1;
    }
    p
}

/// One row of the timeline: a label and its stages.
#[derive(Debug, Clone)]
pub struct Row {
    /// The row's label (a stage's name, or a node's).
    pub label: String,
    /// Its bars.
    pub stages: Vec<Stage>,
}

/// Draws `rows` from `start_ns` to `end_ns` with the fabric's `events` as marks (SM sweeps as
/// dashed lines across, port state changes and SA requests as ticks in a fabric lane, labelled
/// by `name_of(node)`), with the axis in ms. `title` heads it.
pub fn svg(
    title: &str,
    rows: &[Row],
    events: &[FabricEvent],
    start_ns: u64,
    end_ns: u64,
    name_of: &dyn Fn(NodeId) -> String,
) -> String {
    svg_with_module(title, rows, 0, events, start_ns, end_ns, name_of)
}

/// [`svg`] whose last `module_rows` rows are the module's lane (real time after the hand-off,
/// see [`module_stages`]): a line and a label set them apart, and the axis says so.
fn svg_with_module(
    title: &str,
    rows: &[Row],
    module_rows: usize,
    events: &[FabricEvent],
    start_ns: u64,
    end_ns: u64,
    name_of: &dyn Fn(NodeId) -> String,
) -> String {
    const W: f64 = 1100.0;
    const LEFT: f64 = 190.0;
    const RIGHT: f64 = 110.0;
    const TOP: f64 = 50.0;
    const LANE: f64 = 70.0;
    let row_h = if rows.len() > 40 { 8.0 } else { 24.0 };
    let plot_w = W - LEFT - RIGHT;
    let span_ms = ((end_ns.saturating_sub(start_ns)) as f64 / 1e6).max(0.001);
    let x = |ns: u64| LEFT + (ns.saturating_sub(start_ns) as f64 / 1e6) / span_ms * plot_w;
    let rows_top = TOP + LANE + 10.0;
    let rows_h = row_h * rows.len() as f64;
    let axis_y = rows_top + rows_h + 8.0;
    let h = axis_y + 96.0;
    let mut s = String::new();
    s.push_str(&format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" \
         width=\"{W}\" height=\"{h}\" viewBox=\"0 0 {W} {h}\" font-family=\"sans-serif\" \
         font-size=\"12\">\n"
    ));
    s.push_str(&format!(
        "<rect x=\"0\" y=\"0\" width=\"{W}\" height=\"{h}\" fill=\"white\"/>\n\
         <text x=\"{LEFT}\" y=\"24\" font-size=\"16\" font-weight=\"bold\">{}</text>\n",
        esc(title)
    ));
    // The fabric lane.
    s.push_str(&format!(
        "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{plot_w}\" height=\"{LANE}\" fill=\"#f4f6f7\"/>\n\
         <text x=\"{}\" y=\"{}\" text-anchor=\"end\">fabric</text>\n",
        LEFT - 8.0,
        TOP + LANE / 2.0 + 4.0
    ));
    let mut label_slot = 0usize;
    let mut last_label_x = f64::MIN;
    let mut last_sweep_x = f64::MIN;
    let mut sa_x = Vec::new();
    for e in events {
        if e.at_ns < start_ns || e.at_ns > end_ns {
            continue;
        }
        let ex = x(e.at_ns);
        match e.kind {
            FabricEventKind::Sweep => {
                // One label for sweeps closer together than a label's width.
                let label = ex - last_sweep_x > 60.0;
                if label {
                    last_sweep_x = ex;
                }
                s.push_str(&format!(
                    "<line x1=\"{ex:.1}\" y1=\"{TOP}\" x2=\"{ex:.1}\" y2=\"{:.1}\" \
                     stroke=\"#7f8c8d\" stroke-dasharray=\"4,3\"><title>SM sweep at {:.1} \
                     ms</title></line>\n",
                    axis_y,
                    (e.at_ns - start_ns) as f64 / 1e6,
                ));
                if label {
                    s.push_str(&format!(
                        "<text x=\"{ex:.1}\" y=\"{}\" font-size=\"10\" fill=\"#7f8c8d\" \
                         text-anchor=\"middle\">SM sweep</text>\n",
                        TOP - 4.0
                    ));
                }
            }
            FabricEventKind::PortState { node, port, state } => {
                let st = match state {
                    PortState::DOWN => "DOWN",
                    PortState::INIT => "INIT",
                    PortState::ARMED => "ARMED",
                    PortState::ACTIVE => "ACTIVE",
                    _ => "?",
                };
                let c = if state == PortState::ACTIVE {
                    "#1e8449"
                } else if state == PortState::DOWN {
                    "#c0392b"
                } else {
                    "#2c3e50"
                };
                s.push_str(&format!(
                    "<path d=\"M{ex:.1},{} l-4,-7 h8 z\" fill=\"{c}\"><title>{} port {port} {st} \
                     at {:.3} ms</title></path>\n",
                    TOP + LANE - 2.0,
                    esc(&name_of(node)),
                    (e.at_ns - start_ns) as f64 / 1e6
                ));
                if rows.len() <= 40 {
                    if ex - last_label_x > 90.0 {
                        label_slot = 0;
                    } else {
                        label_slot = (label_slot + 1) % 4;
                    }
                    last_label_x = ex;
                    s.push_str(&format!(
                        "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" fill=\"{c}\">{} p{port} \
                         {st}</text>\n",
                        ex + 2.0,
                        TOP + 14.0 + 12.0 * label_slot as f64,
                        esc(&name_of(node))
                    ));
                }
            }
            FabricEventKind::SaRequest { .. } => sa_x.push(ex),
        }
    }
    for ex in &sa_x {
        s.push_str(&format!(
            "<line x1=\"{ex:.1}\" y1=\"{}\" x2=\"{ex:.1}\" y2=\"{}\" stroke=\"#8e44ad\" \
             stroke-width=\"1\"/>\n",
            TOP + LANE - 14.0,
            TOP + LANE - 10.0
        ));
    }
    if !sa_x.is_empty() {
        s.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" font-size=\"10\" fill=\"#8e44ad\">SA requests: {}</text>\n",
            LEFT + plot_w + 4.0,
            TOP + LANE - 8.0,
            sa_x.len()
        ));
    }
    // The rows.
    for (i, r) in rows.iter().enumerate() {
        let y = rows_top + row_h * i as f64;
        if i % 2 == 1 {
            s.push_str(&format!(
                "<rect x=\"{LEFT}\" y=\"{y:.1}\" width=\"{plot_w}\" height=\"{row_h}\" \
                 fill=\"#fbfcfc\"/>\n"
            ));
        }
        if row_h >= 12.0 || i % 8 == 0 {
            s.push_str(&format!(
                "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\" font-size=\"{}\">{}</text>\n",
                LEFT - 8.0,
                y + row_h / 2.0 + 4.0,
                if row_h >= 12.0 { 12 } else { 9 },
                esc(&r.label)
            ));
        }
        for st in &r.stages {
            let (x0, x1) = (x(st.start_ns), x(st.end_ns));
            let w = (x1 - x0).max(1.5);
            s.push_str(&format!(
                "<rect x=\"{x0:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{:.1}\" fill=\"{}\" \
                 data-stage=\"{}\"><title>{}: {:.3} ms ({:.3} to {:.3} ms)</title></rect>\n",
                y + row_h * 0.15,
                row_h * 0.7,
                colour(&st.name),
                esc(&st.name),
                esc(&st.name),
                st.ms(),
                (st.start_ns - start_ns) as f64 / 1e6,
                (st.end_ns - start_ns) as f64 / 1e6
            ));
            if row_h >= 12.0 && r.stages.len() == 1 {
                s.push_str(&format!(
                    "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\">{:.1} ms</text>\n",
                    x0 + w + 4.0,
                    y + row_h / 2.0 + 4.0,
                    st.ms()
                ));
            }
        }
    }
    // The module's lane: a separator and its label.
    if module_rows > 0 && module_rows <= rows.len() {
        let first = rows.len() - module_rows;
        let y = rows_top + row_h * first as f64;
        let handoff = rows[first].stages.first().map_or(LEFT, |st| x(st.start_ns));
        s.push_str(&format!(
            "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#16a085\"/>\n\
             <line x1=\"{handoff:.1}\" y1=\"{TOP}\" x2=\"{handoff:.1}\" y2=\"{axis_y:.1}\" \
             stroke=\"#16a085\" stroke-dasharray=\"2,2\"><title>hand-off to the OS</title></line>\n\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" fill=\"#16a085\" \
             data-lane=\"module\">isboot.ko under kldrun: real time after the hand-off</text>\n",
            LEFT + plot_w,
            LEFT + 4.0,
            y - 3.0,
        ));
    }
    // The axis.
    let step = tick_step(span_ms);
    s.push_str(&format!(
        "<line x1=\"{LEFT}\" y1=\"{axis_y:.1}\" x2=\"{}\" y2=\"{axis_y:.1}\" stroke=\"black\"/>\n",
        LEFT + plot_w
    ));
    let mut t = 0.0;
    while t <= span_ms + 1e-9 {
        let tx = LEFT + t / span_ms * plot_w;
        s.push_str(&format!(
            "<line x1=\"{tx:.1}\" y1=\"{axis_y:.1}\" x2=\"{tx:.1}\" y2=\"{:.1}\" \
             stroke=\"black\"/>\n<text x=\"{tx:.1}\" y=\"{:.1}\" text-anchor=\"middle\" \
             font-size=\"11\">{}</text>\n",
            axis_y + 5.0,
            axis_y + 18.0,
            fmt_ms(t)
        ));
        t += step;
    }
    s.push_str(&format!(
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n",
        LEFT + plot_w / 2.0,
        axis_y + 36.0,
        if module_rows > 0 {
            "ms: simulated time since power-on, then isboot.ko's real time after the hand-off"
        } else {
            "simulated time since power-on (ms)"
        }
    ));
    // The legend.
    let mut lx = LEFT;
    for name in [
        "probe",
        "link wait",
        "SA join",
        "DHCP",
        "login",
        "boot blocks",
        "iBFT",
        "isboot.ko: ",
    ]
    .into_iter()
    .filter(|n| module_rows > 0 || !n.starts_with("isboot.ko"))
    {
        let fill = colour(name);
        let name = name.trim_end_matches(": ");
        s.push_str(&format!(
            "<rect x=\"{lx:.1}\" y=\"{:.1}\" width=\"12\" height=\"12\" fill=\"{}\"/>\n\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\">{name}</text>\n",
            axis_y + 52.0,
            fill,
            lx + 16.0,
            axis_y + 62.0
        ));
        lx += 30.0 + 7.0 * name.len() as f64;
    }
    s.push_str(&format!(
        "<text x=\"{LEFT}\" y=\"{:.1}\" font-size=\"11\" fill=\"#7f8c8d\">fabric marks: SM \
         sweeps (dashed lines), port state changes (triangles: green ACTIVE, red DOWN), SA \
         requests (purple ticks)</text>\n",
        axis_y + 82.0
    ));
    s.push_str("</svg>\n");
    s
}

fn fmt_ms(t: f64) -> String {
    if t >= 10.0 || t == 0.0 {
        format!("{t:.0}")
    } else if t >= 1.0 {
        format!("{t:.1}")
    } else {
        format!("{t:.2}")
    }
}

/// One boot drawn as a timeline: a row per stage.
pub fn boot_svg(title: &str, stages: &[Stage], events: &[FabricEvent], node: NodeId) -> String {
    boot_svg_with_module(title, stages, &[], events, node)
}

/// [`boot_svg`] with the module's stages ([`module_stages`], placed after the ROM's end) in a
/// lane of their own below the ROM's, labelled as real time after the hand-off.
pub fn boot_svg_with_module(
    title: &str,
    stages: &[Stage],
    module: &[Stage],
    events: &[FabricEvent],
    node: NodeId,
) -> String {
    let start = stages.first().map_or(0, |s| s.start_ns);
    let end = stages
        .iter()
        .chain(module)
        .map(|s| s.end_ns)
        .max()
        .unwrap_or(start);
    let rows: Vec<Row> = stages
        .iter()
        .chain(module)
        .map(|s| Row {
            label: s.name.clone(),
            stages: std::vec![s.clone()],
        })
        .collect();
    svg_with_module(title, &rows, module.len(), events, start, end, &|n| {
        if n == node {
            "node".to_string()
        } else {
            format!("node {n}")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing() -> Timing {
        Timing {
            start_ns: 1_000_000,
            probe_end_ns: Some(3_000_000),
            lines: std::vec![
                (
                    5_003_000_000,
                    "port 1: IPoIB: port 1 stays DOWN: no physical link".into()
                ),
                (
                    5_200_000_000,
                    "port 2: ACTIVE; joined the IPoIB broadcast group, IP MTU 2044".into()
                ),
                (5_300_000_000, "DHCP: 192.0.2.100/24 via ...".into()),
                (5_310_000_000, "iSCSI: logged in to iqn.x at ...".into()),
                (5_320_000_000, "iSCSI: LUN 1 is 16 MiB; read 4096".into()),
                (5_321_000_000, "iBFT: NIC 0 ...".into()),
            ],
        }
    }

    fn events() -> Vec<FabricEvent> {
        std::vec![
            FabricEvent {
                at_ns: 2_000_000,
                kind: FabricEventKind::Sweep,
            },
            FabricEvent {
                at_ns: 5_150_000_000,
                kind: FabricEventKind::PortState {
                    node: 1,
                    port: 2,
                    state: PortState::ACTIVE,
                },
            },
            FabricEvent {
                at_ns: 5_160_000_000,
                kind: FabricEventKind::SaRequest {
                    from: Some((1, 2)),
                    attr: 0x38,
                },
            },
        ]
    }

    #[test]
    fn each_stage_is_timed() {
        let st = stages(&timing(), &events(), 1);
        let names: Vec<&str> = st.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "probe",
                "link wait port 1",
                "link wait port 2",
                "SA join",
                "DHCP",
                "login",
                "boot blocks",
                "iBFT"
            ]
        );
        assert_eq!(st[2].end_ns, 5_150_000_000);
        assert_eq!(st[3].ms(), 50.0);
        assert!(summary(&st).starts_with("stages: probe 2.0 ms, link wait port 1 5000.0 ms"));
    }

    const MODULE_SYSCTL: &str = "net.isboot.timing.hold_released_ms: 1145\n\
        net.isboot.timing.disk_ms: 641\n\
        net.isboot.timing.login_ms: 104\n\
        net.isboot.timing.address_ms: 102\n\
        net.isboot.timing.interface_ms: 101\n\
        net.isboot.device: da0\n";

    #[test]
    fn the_module_stages_follow_the_handoff_in_boot_order() {
        let m = module_stages(MODULE_SYSCTL, 5_321_000_000).unwrap();
        let names: Vec<&str> = m.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, MODULE_STAGES.map(|(_, n)| n));
        assert_eq!(m[0].start_ns, 5_321_000_000);
        assert_eq!(m[0].end_ns, 5_321_000_000 + 101_000_000);
        assert_eq!(m[2].ms(), 2.0);
        assert_eq!(m[4].end_ns, 5_321_000_000 + 1_145_000_000);
        assert!(m.windows(2).all(|w| w[0].end_ns == w[1].start_ns));
        // A boot that failed at the login: the stages up to the address, then the end.
        let failed = MODULE_SYSCTL
            .replace("login_ms: 104", "login_ms: -1")
            .replace("disk_ms: 641", "disk_ms: -1");
        assert_eq!(module_stages(&failed, 0).unwrap().len(), 2);
        // Missing, unreadable or backwards: an error naming the leaf.
        let e = module_stages("net.isboot.device: da0", 0).unwrap_err();
        assert!(e.contains("net.isboot.timing.interface_ms"), "{e}");
        let e = module_stages(&MODULE_SYSCTL.replace("641", "x"), 0).unwrap_err();
        assert!(e.contains("disk_ms"), "{e}");
        let e = module_stages(&MODULE_SYSCTL.replace("641", "50"), 0).unwrap_err();
        assert!(e.contains("disk_ms (50 ms)"), "{e}");
    }

    #[test]
    fn the_module_lane_is_drawn_after_the_rom() {
        let st = stages(&timing(), &events(), 1);
        let rom_end = st.last().unwrap().end_ns;
        let m = module_stages(MODULE_SYSCTL, rom_end).unwrap();
        let svg = boot_svg_with_module("with the module", &st, &m, &events(), 1);
        for s in st.iter().chain(&m) {
            assert!(
                svg.contains(&format!("data-stage=\"{}\"", s.name)),
                "{}",
                s.name
            );
        }
        assert!(svg.contains("real time after the hand-off"));
        assert!(svg.contains("then isboot.ko's real time after the hand-off"));
        // Without the module: no lane.
        let plain = boot_svg("plain", &st, &events(), 1);
        assert!(!plain.contains("data-lane") && !plain.contains("isboot.ko"));
        // The module's first bar starts where the ROM's last ends (same x).
        let x_of = |svg: &str, stage: &str| -> f64 {
            let i = svg.find(&format!("data-stage=\"{stage}\"")).unwrap();
            let rect = &svg[svg[..i].rfind("<rect").unwrap()..i];
            let x = rect.split("x=\"").nth(1).unwrap();
            x[..x.find('"').unwrap()].parse().unwrap()
        };
        let rom_last = st.last().unwrap();
        let x_end = x_of(&svg, &rom_last.name);
        let i = svg
            .find(&format!("data-stage=\"{}\"", rom_last.name))
            .unwrap();
        let rect = &svg[svg[..i].rfind("<rect").unwrap()..i];
        let w: f64 = rect
            .split("width=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        // (A bar is at least 1.5 px wide, so the ROM's 1 ms iBFT bar may reach past it.)
        let x_module = x_of(&svg, "isboot.ko: interface");
        assert!(
            x_module > x_end && x_module <= x_end + w + 0.1,
            "{x_module} {x_end} {w}"
        );
    }

    #[test]
    fn the_svg_is_well_formed_and_has_every_stage() {
        let st = stages(&timing(), &events(), 1);
        let svg = boot_svg("a boot <&>", &st, &events(), 1);
        for s in &st {
            assert!(
                svg.contains(&format!("data-stage=\"{}\"", s.name)),
                "{}",
                s.name
            );
        }
        assert!(svg.contains("SM sweep") && svg.contains("p2 ACTIVE"));
        assert!(svg.contains("a boot &lt;&amp;&gt;"));
        let dir = std::env::temp_dir().join(format!("isboot-tl-{}.svg", std::process::id()));
        std::fs::write(&dir, &svg).unwrap();
        let out = std::process::Command::new("python3")
            .args([
                "-c",
                "import sys, xml.dom.minidom as m; d = m.parse(sys.argv[1]); \
                 assert d.documentElement.tagName == 'svg'",
            ])
            .arg(&dir)
            .output();
        let _ = std::fs::remove_file(&dir);
        if let Ok(o) = out {
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        }
    }
}

//! SVG charts of a bench run (plotters, SVG backend only): one chart per
//! operation (median per path, 95% interval whiskers) and one of every
//! ratio to the ioctl path.

use crate::ops::PathKind;
use crate::report::{BenchReport, OpResult};
use anyhow::{anyhow, Context};
use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

const WIDTH: u32 = 720;
const HEIGHT: u32 = 420;

/// The colour of a path in every chart.
fn colour(path: PathKind) -> RGBColor {
    match path {
        PathKind::Ioctl => RGBColor(120, 120, 120),
        PathKind::Legacy => RGBColor(31, 119, 180),
        PathKind::Shim => RGBColor(255, 127, 14),
        PathKind::Trap => RGBColor(214, 39, 40),
        PathKind::Native => RGBColor(44, 160, 44),
    }
}

/// The right edge of segment `i` of `n`.
fn right_edge(i: u32, n: u32) -> SegmentValue<u32> {
    if i + 1 >= n {
        SegmentValue::Last
    } else {
        SegmentValue::Exact(i + 1)
    }
}

fn plot_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing the chart: {e:?}")
}

/// One bar: label, colour, median, interval low and high (µs).
pub type Bar = (String, RGBColor, f64, f64, f64);

/// Median (µs) per path of one op, with its interval.
pub fn op_chart(op: &OpResult, file: &Path) -> anyhow::Result<()> {
    let bars: Vec<Bar> = op
        .results
        .iter()
        .filter(|r| r.status == "ok")
        .filter_map(|r| {
            let m = r.median_ci?;
            Some((
                r.path.name().to_string(),
                colour(r.path),
                m.value / 1e3,
                m.low / 1e3,
                m.high / 1e3,
            ))
        })
        .collect();
    bar_chart(
        &format!("{}: median per sample, 95% CI", op.op),
        &bars,
        file,
    )
}

/// A bar chart of medians with interval whiskers.
pub fn bar_chart(title: &str, bars: &[Bar], file: &Path) -> anyhow::Result<()> {
    if bars.is_empty() {
        return Ok(());
    }
    let top = bars
        .iter()
        .map(|b| b.4.max(b.2))
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max)
        * 1.2;
    let root = SVGBackend::new(file, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let n = bars.len() as u32;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d((0..n - 1).into_segmented(), 0.0..top.max(1e-3))
        .map_err(plot_err)?;
    let names: Vec<&str> = bars.iter().map(|b| b.0.as_str()).collect();
    let label = |v: &SegmentValue<u32>| match v {
        SegmentValue::CenterOf(i) => names
            .get(*i as usize)
            .map_or(String::new(), |s| s.to_string()),
        _ => String::new(),
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(bars.len() + 1)
        .x_label_formatter(&label)
        .y_desc("µs")
        .draw()
        .map_err(plot_err)?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, b)| {
            let i = i as u32;
            let mut r = Rectangle::new(
                [(SegmentValue::Exact(i), 0.0), (right_edge(i, n), b.2)],
                b.1.filled(),
            );
            r.set_margin(0, 0, 18, 18);
            r
        }))
        .map_err(plot_err)?;
    let whisker = BLACK.stroke_width(2);
    for (i, b) in bars.iter().enumerate() {
        let i = i as u32;
        if !(b.3.is_finite() && b.4.is_finite()) {
            continue;
        }
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![
                    (SegmentValue::CenterOf(i), b.3),
                    (SegmentValue::CenterOf(i), b.4),
                ],
                whisker,
            )))
            .map_err(plot_err)?;
        for y in [b.3, b.4] {
            chart
                .draw_series(std::iter::once(
                    EmptyElement::at((SegmentValue::CenterOf(i), y))
                        + PathElement::new(vec![(-8, 0), (8, 0)], whisker),
                ))
                .map_err(plot_err)?;
        }
        chart
            .draw_series(std::iter::once(
                EmptyElement::at((SegmentValue::CenterOf(i), b.4.max(b.2)))
                    + Text::new(
                        format!("{:.2}", b.2),
                        (-14, -18),
                        ("sans-serif", 13).into_font(),
                    ),
            ))
            .map_err(plot_err)?;
    }
    root.present().map_err(plot_err)?;
    Ok(())
}

// Segmented coordinates over an integer range include its end: `0..n - 1`
// gives the n segments 0..n.

/// Ratio to the ioctl path of every op and path, with intervals.
pub fn ratio_chart(report: &BenchReport, file: &Path) -> anyhow::Result<()> {
    let paths: Vec<PathKind> = PathKind::ALL
        .into_iter()
        .filter(|&p| {
            p != PathKind::Ioctl
                && report
                    .ops
                    .iter()
                    .any(|o| o.get(p).is_some_and(|r| r.ratio_to_ioctl.is_some()))
        })
        .collect();
    let ops: Vec<&OpResult> = report
        .ops
        .iter()
        .filter(|o| {
            paths
                .iter()
                .any(|&p| o.get(p).is_some_and(|r| r.ratio_to_ioctl.is_some()))
        })
        .collect();
    if ops.is_empty() || paths.is_empty() {
        return Ok(());
    }
    let top = ops
        .iter()
        .flat_map(|o| paths.iter().filter_map(|&p| o.get(p)?.ratio_to_ioctl))
        .map(|r| {
            if r.high.is_finite() {
                r.high.max(r.value)
            } else {
                r.value
            }
        })
        .fold(1.0f64, f64::max)
        * 1.15;
    let width = (140 + 100 * ops.len() as u32).max(WIDTH);
    let root = SVGBackend::new(file, (width, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let n = ops.len() as u32;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            if report.settings.unit == "instructions" {
                "instructions / instructions of the raw ioctl, patched kernel under QEMU -icount \
                 (1 = as many as the ioctl)"
            } else {
                "median / median of the raw ioctl, 95% CI (1 = as fast as the ioctl)"
            },
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d((0..n - 1).into_segmented(), 0.0..top)
        .map_err(plot_err)?;
    let names: Vec<String> = ops.iter().map(|o| o.op.clone()).collect();
    let label = |v: &SegmentValue<u32>| match v {
        SegmentValue::CenterOf(i) => names.get(*i as usize).cloned().unwrap_or_default(),
        _ => String::new(),
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(ops.len() + 1)
        .x_label_formatter(&label)
        .x_label_style(("sans-serif", 11))
        .y_desc("ratio to ioctl")
        .draw()
        .map_err(plot_err)?;
    // Pixel geometry of one segment, for the bars side by side inside it.
    let seg_px = chart.plotting_area().dim_in_pixel().0 as f64 / f64::from(n);
    let pad = (seg_px * 0.12).max(2.0);
    let bar_px = ((seg_px - 2.0 * pad) / paths.len() as f64).max(1.0);
    for (j, &p) in paths.iter().enumerate() {
        let left = (pad + j as f64 * bar_px) as u32;
        let right = (seg_px - pad - (j + 1) as f64 * bar_px).max(0.0) as u32;
        let style = colour(p).filled();
        chart
            .draw_series(ops.iter().enumerate().filter_map(|(i, o)| {
                let r = o.get(p)?.ratio_to_ioctl?;
                let i = i as u32;
                let mut rect = Rectangle::new(
                    [(SegmentValue::Exact(i), 0.0), (right_edge(i, n), r.value)],
                    style,
                );
                rect.set_margin(0, 0, left, right);
                Some(rect)
            }))
            .map_err(plot_err)?
            .label(p.name())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], style));
        let offset = (-seg_px / 2.0 + pad + (j as f64 + 0.5) * bar_px) as i32;
        for (i, o) in ops.iter().enumerate() {
            let Some(r) = o.get(p).and_then(|r| r.ratio_to_ioctl) else {
                continue;
            };
            if !(r.low.is_finite() && r.high.is_finite()) {
                continue;
            }
            let i = i as u32;
            let whisker = BLACK.stroke_width(1);
            // The whisker itself, drawn in pixels around the bar's centre.
            let span = chart.backend_coord(&(SegmentValue::CenterOf(i), r.low)).1
                - chart.backend_coord(&(SegmentValue::CenterOf(i), r.high)).1;
            chart
                .draw_series(std::iter::once(
                    EmptyElement::at((SegmentValue::CenterOf(i), r.high))
                        + PathElement::new(
                            vec![
                                (offset - 3, 0),
                                (offset + 3, 0),
                                (offset, 0),
                                (offset, span),
                                (offset - 3, span),
                                (offset + 3, span),
                            ],
                            whisker,
                        ),
                ))
                .map_err(plot_err)?;
        }
    }
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![(SegmentValue::Exact(0), 1.0), (SegmentValue::Last, 1.0)],
            BLACK.stroke_width(1),
        )))
        .map_err(plot_err)?;
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(plot_err)?;
    root.present().map_err(plot_err)?;
    Ok(())
}

/// Writes every chart of `report` into `dir`; returns the files.
pub fn write_all(report: &BenchReport, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut files = Vec::new();
    for op in &report.ops {
        let file = dir.join(format!("{}.svg", op.op));
        op_chart(op, &file).with_context(|| format!("chart {}", file.display()))?;
        if file.exists() {
            files.push(file);
        }
    }
    if let Some(d) = &report.mmio_delivery {
        let palette = [
            RGBColor(120, 120, 120),
            RGBColor(44, 160, 44),
            RGBColor(148, 103, 189),
            RGBColor(140, 86, 75),
        ];
        let bars: Vec<Bar> = d
            .rows
            .iter()
            .enumerate()
            .map(|(i, r)| {
                (
                    r.way.clone(),
                    palette[i % palette.len()],
                    r.median_ci.value / 1e3,
                    r.median_ci.low / 1e3,
                    r.median_ci.high / 1e3,
                )
            })
            .collect();
        let file = dir.join("mmio-delivery.svg");
        bar_chart(
            &format!(
                "mmio-delivery ({} backend): median per access, 95% CI",
                d.backend
            ),
            &bars,
            &file,
        )?;
        if file.exists() {
            files.push(file);
        }
    }
    let file = dir.join("ratios.svg");
    ratio_chart(report, &file).with_context(|| format!("chart {}", file.display()))?;
    if file.exists() {
        files.push(file);
    }
    Ok(files)
}

//! Small charts drawn on [`hrm_data::Canvas`]: line charts (training curves, the architecture
//! comparison) and histograms (ACT steps used), with axes, ticks, labels and a legend. No
//! plotting dependency: the canvas and its bitmap font come from hrm-data.

use std::path::Path;

use hrm_data::{Canvas, Rgb};

use hrm_train::Result;

/// Colours of successive series, distinguishable on white.
pub const PALETTE: [Rgb; 8] = [
    Rgb(31, 119, 180),
    Rgb(214, 39, 40),
    Rgb(44, 160, 44),
    Rgb(255, 127, 14),
    Rgb(148, 103, 189),
    Rgb(140, 86, 75),
    Rgb(227, 119, 194),
    Rgb(23, 190, 207),
];

/// One line of a chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// `(x, y)` points in drawing order.
    pub points: Vec<(f64, f64)>,
}

/// A line chart.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LineChart {
    /// Title above the plot.
    pub title: String,
    /// Label under the x axis.
    pub x_label: String,
    /// Label of the y axis (drawn above it).
    pub y_label: String,
    /// The lines.
    pub series: Vec<Series>,
    /// Fixed y range; the data's range (padded) when `None`.
    pub y_range: Option<(f64, f64)>,
}

const MARGIN_LEFT: i64 = 70;
const MARGIN_RIGHT: i64 = 20;
const MARGIN_TOP: i64 = 40;
const MARGIN_BOTTOM: i64 = 50;
const TEXT: usize = 1;

impl LineChart {
    /// Draws the chart on a new `width x height` canvas.
    pub fn render(&self, width: usize, height: usize) -> Canvas {
        let mut c = Canvas::new(width, height, Rgb::WHITE);
        self.draw(&mut c, 0, 0, width as i64, height as i64);
        c
    }

    /// Draws the chart into the rectangle `(x, y, w, h)` of `canvas`.
    pub fn draw(&self, canvas: &mut Canvas, x: i64, y: i64, w: i64, h: i64) {
        let pts: Vec<(f64, f64)> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().copied())
            .filter(|(a, b)| a.is_finite() && b.is_finite())
            .collect();
        let (x0, x1) = range(pts.iter().map(|p| p.0), false);
        let (y0, y1) = self
            .y_range
            .unwrap_or_else(|| range(pts.iter().map(|p| p.1), true));
        let area = Area {
            left: x + MARGIN_LEFT,
            top: y + MARGIN_TOP,
            right: x + w - MARGIN_RIGHT,
            bottom: y + h - MARGIN_BOTTOM,
        };
        let to_px = |(px, py): (f64, f64)| area.map(px, py, (x0, x1), (y0, y1));
        canvas.draw_text(x + MARGIN_LEFT, y + 8, &self.title, 2, Rgb::BLACK);
        axes(
            canvas,
            &area,
            (x0, x1),
            (y0, y1),
            &self.x_label,
            &self.y_label,
            true,
        );
        for (i, s) in self.series.iter().enumerate() {
            let colour = PALETTE[i % PALETTE.len()];
            let mut last: Option<(i64, i64)> = None;
            for &p in s
                .points
                .iter()
                .filter(|(a, b)| a.is_finite() && b.is_finite())
            {
                let q = to_px(p);
                if let Some(l) = last {
                    thick_line(canvas, l, q, colour);
                }
                canvas.fill_rect(q.0 - 2, q.1 - 2, 5, 5, colour);
                last = Some(q);
            }
            // Legend, top right inside the plot.
            let ly = area.top + 6 + 12 * i as i64;
            let lx = area.right - 10 - Canvas::text_width(&s.name, TEXT) as i64 - 18;
            canvas.fill_rect(lx, ly + 2, 12, 4, colour);
            canvas.draw_text(lx + 16, ly, &s.name, TEXT, Rgb::BLACK);
        }
    }

    /// Renders and writes a PNG.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn save_png(&self, path: &Path, width: usize, height: usize) -> Result<()> {
        Ok(self.render(width, height).save_png(path)?)
    }
}

/// A histogram of counts per integer bin (e.g. ACT steps used).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Histogram {
    /// Title above the plot.
    pub title: String,
    /// Label under the x axis.
    pub x_label: String,
    /// `(bin, count)` pairs.
    pub bins: Vec<(i64, u64)>,
}

impl Histogram {
    /// Draws the histogram on a new canvas.
    pub fn render(&self, width: usize, height: usize) -> Canvas {
        let mut c = Canvas::new(width, height, Rgb::WHITE);
        let area = Area {
            left: MARGIN_LEFT,
            top: MARGIN_TOP,
            right: width as i64 - MARGIN_RIGHT,
            bottom: height as i64 - MARGIN_BOTTOM,
        };
        c.draw_text(MARGIN_LEFT, 8, &self.title, 2, Rgb::BLACK);
        let max = self.bins.iter().map(|b| b.1).max().unwrap_or(1).max(1) as f64;
        let lo = self.bins.iter().map(|b| b.0).min().unwrap_or(0) as f64 - 0.5;
        let hi = self.bins.iter().map(|b| b.0).max().unwrap_or(0) as f64 + 0.5;
        axes(
            &mut c,
            &area,
            (lo, hi),
            (0.0, max),
            &self.x_label,
            "count",
            false,
        );
        let bin_w = ((area.right - area.left) as f64 / (hi - lo)).max(1.0);
        for &(bin, count) in &self.bins {
            let (px, py) = area.map(bin as f64, count as f64, (lo, hi), (0.0, max));
            let half = (bin_w * 0.4) as i64;
            c.fill_rect(px - half, py, 2 * half, area.bottom - py, PALETTE[0]);
            c.draw_text(px - half, py - 12, &count.to_string(), TEXT, Rgb::DARK_GREY);
            let label = bin.to_string();
            c.draw_text(
                px - Canvas::text_width(&label, TEXT) as i64 / 2,
                area.bottom + 8,
                &label,
                TEXT,
                Rgb::BLACK,
            );
        }
        c
    }
}

struct Area {
    left: i64,
    top: i64,
    right: i64,
    bottom: i64,
}

impl Area {
    fn map(&self, x: f64, y: f64, (x0, x1): (f64, f64), (y0, y1): (f64, f64)) -> (i64, i64) {
        let fx = if x1 > x0 { (x - x0) / (x1 - x0) } else { 0.5 };
        let fy = if y1 > y0 { (y - y0) / (y1 - y0) } else { 0.5 };
        let px = self.left as f64 + fx * (self.right - self.left) as f64;
        let py = self.bottom as f64 - fy * (self.bottom - self.top) as f64;
        (px.round() as i64, py.round() as i64)
    }
}

/// Axis lines, five ticks with values on each axis, and the labels.
fn axes(
    c: &mut Canvas,
    a: &Area,
    (x0, x1): (f64, f64),
    (y0, y1): (f64, f64),
    x_label: &str,
    y_label: &str,
    x_ticks: bool,
) {
    c.draw_line(a.left, a.bottom, a.right, a.bottom, Rgb::BLACK);
    c.draw_line(a.left, a.top, a.left, a.bottom, Rgb::BLACK);
    for i in 0..=4 {
        let f = f64::from(i) / 4.0;
        if x_ticks {
            let xv = x0 + f * (x1 - x0);
            let (px, _) = a.map(xv, y0, (x0, x1), (y0, y1));
            c.draw_line(px, a.bottom, px, a.bottom + 4, Rgb::BLACK);
            let label = tick(xv);
            c.draw_text(
                px - Canvas::text_width(&label, TEXT) as i64 / 2,
                a.bottom + 8,
                &label,
                TEXT,
                Rgb::BLACK,
            );
        }
        let yv = y0 + f * (y1 - y0);
        let (_, py) = a.map(x0, yv, (x0, x1), (y0, y1));
        c.draw_line(a.left - 4, py, a.left, py, Rgb::BLACK);
        c.draw_line(a.left + 1, py, a.right, py, Rgb::LIGHT_GREY);
        let label = tick(yv);
        c.draw_text(
            a.left - 8 - Canvas::text_width(&label, TEXT) as i64,
            py - 4,
            &label,
            TEXT,
            Rgb::BLACK,
        );
    }
    let xl = Canvas::text_width(x_label, TEXT) as i64;
    c.draw_text(
        (a.left + a.right - xl) / 2,
        a.bottom + 28,
        x_label,
        TEXT,
        Rgb::BLACK,
    );
    c.draw_text(a.left - 60, a.top - 14, y_label, TEXT, Rgb::BLACK);
}

fn thick_line(c: &mut Canvas, (x0, y0): (i64, i64), (x1, y1): (i64, i64), colour: Rgb) {
    c.draw_line(x0, y0, x1, y1, colour);
    c.draw_line(x0, y0 + 1, x1, y1 + 1, colour);
}

/// A compact tick label: integers plainly, small or large values in scientific notation.
fn tick(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if !(1e-2..1e5).contains(&a) {
        format!("{v:.1e}")
    } else if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// `(min, max)` of the values, padded by 5 % (only above and below when `pad`); `(0, 1)` when
/// empty.
fn range(values: impl Iterator<Item = f64>, pad: bool) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
        (l.min(v), h.max(v))
    });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if hi <= lo {
        return (lo - 0.5, hi + 0.5);
    }
    let m = if pad { 0.05 * (hi - lo) } else { 0.0 };
    (lo - m, hi + m)
}

/// Draws the training curves of a run directory's `metrics.jsonl` into `curves.png` beside it:
/// training loss on the left, training and evaluation accuracies on the right. Non-finite
/// values (a diverged step) are left out of the lines; a torn last line is ignored.
///
/// # Errors
/// When `metrics.jsonl` cannot be read or the PNG cannot be written.
pub fn training_curves(run_dir: &Path) -> Result<()> {
    use hrm_train::run_dir::{read_metrics, MetricsLine};
    let lines = read_metrics(&run_dir.join("metrics.jsonl"))?;
    let mut loss = Vec::new();
    let mut train_acc = Vec::new();
    let mut train_exact = Vec::new();
    let mut eval_acc = Vec::new();
    let mut eval_exact = Vec::new();
    for l in &lines {
        match l {
            MetricsLine::Train { step, metrics, .. } => {
                let s = *step as f64;
                loss.push((s, metrics.get("lm_loss")));
                train_acc.push((s, metrics.get("accuracy")));
                train_exact.push((s, metrics.get("exact_accuracy")));
            }
            MetricsLine::Eval { step, overall, .. } => {
                eval_acc.push((*step as f64, overall.get("accuracy")));
                eval_exact.push((*step as f64, overall.get("exact_accuracy")));
            }
            // Skipped steps have no metrics; NaN points of a train line are left out when drawn.
            MetricsLine::NonFinite { .. } => {}
        }
    }
    let series = |name: &str, points: Vec<(f64, f64)>| Series {
        name: name.into(),
        points,
    };
    let left = LineChart {
        title: "training loss".into(),
        x_label: "step".into(),
        y_label: "lm_loss".into(),
        series: vec![series("train lm_loss", loss)],
        y_range: None,
    };
    let right = LineChart {
        title: "accuracy".into(),
        x_label: "step".into(),
        y_label: "share".into(),
        series: vec![
            series("train token", train_acc),
            series("train exact", train_exact),
            series("eval token", eval_acc),
            series("eval exact", eval_exact),
        ],
        y_range: Some((0.0, 1.0)),
    };
    let (w, h) = (640i64, 420i64);
    let mut canvas = Canvas::new(2 * w as usize, h as usize, Rgb::WHITE);
    left.draw(&mut canvas, 0, 0, w, h);
    right.draw(&mut canvas, w, 0, w, h);
    Ok(canvas.save_png(&run_dir.join("curves.png"))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_chart_draws_its_series_in_colour() {
        let chart = LineChart {
            title: "t".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            series: vec![Series {
                name: "a".into(),
                points: vec![(0.0, 0.0), (1.0, 1.0)],
            }],
            y_range: None,
        };
        let c = chart.render(300, 200);
        let coloured = (0..c.width())
            .flat_map(|x| (0..c.height()).map(move |y| (x, y)))
            .filter(|&(x, y)| c.pixel(x, y) == Some(PALETTE[0]))
            .count();
        assert!(coloured > 50, "{coloured} pixels of the series colour");
    }

    #[test]
    fn ticks_are_compact() {
        assert_eq!(tick(0.0), "0");
        assert_eq!(tick(2000.0), "2000");
        assert_eq!(tick(0.25), "0.25");
        assert_eq!(tick(3e-4), "3.0e-4");
    }
}

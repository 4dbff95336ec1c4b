//! A decoded frame of a rendered video (packed RGB from
//! [`frame_rgb`], through the gateway) and where pixels of a colour are in
//! it: how the render tests see what a short shows.

use std::path::Path;

use crate::process::Ffmpeg;
use crate::render::frame_rgb;

/// A rectangle in pixels, half-open: `x0..x1` × `y0..y1`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rect {
    /// Left edge.
    pub x0: f64,
    /// Right edge (outside).
    pub x1: f64,
    /// Top edge.
    pub y0: f64,
    /// Bottom edge (outside).
    pub y1: f64,
}

impl Rect {
    /// The rectangle `x0..x1` × `y0..y1`.
    #[must_use]
    pub fn new(x0: f64, x1: f64, y0: f64, y1: f64) -> Self {
        Self { x0, x1, y0, y1 }
    }

    /// Every edge within `tolerance` pixels of `other`'s.
    #[must_use]
    pub fn near(&self, other: &Rect, tolerance: f64) -> bool {
        [(self.x0, other.x0), (self.x1, other.x1), (self.y0, other.y0), (self.y1, other.y1)]
            .iter()
            .all(|(a, b)| (a - b).abs() <= tolerance)
    }

    /// Which quadrant of a `width`×`height` frame its centre is in.
    #[must_use]
    pub fn corner(&self, width: f64, height: f64) -> &'static str {
        let (cx, cy) = ((self.x0 + self.x1) / 2.0, (self.y0 + self.y1) / 2.0);
        match (cx < width / 2.0, cy < height / 2.0) {
            (true, true) => "top-left",
            (false, true) => "top-right",
            (true, false) => "bottom-left",
            (false, false) => "bottom-right",
        }
    }
}

/// One decoded frame.
pub struct Frame {
    /// Pixels a row.
    pub width: usize,
    /// 3 bytes a pixel, rows top to bottom.
    pub rgb: Vec<u8>,
}

impl Frame {
    /// The first frame at or after `t` seconds of `video`, `width` pixels wide.
    ///
    /// # Panics
    /// When it cannot be decoded, or is not a whole number of rows.
    pub async fn at(video: &Path, t: f64, width: u32) -> Self {
        let rgb = frame_rgb(&Ffmpeg::default(), video, t).await.unwrap();
        assert_eq!(rgb.len() % (3 * width as usize), 0, "{} bytes is not a whole {width}-wide frame", rgb.len());
        Self { width: width as usize, rgb }
    }

    /// Rows.
    #[must_use]
    pub fn height(&self) -> usize {
        self.rgb.len() / 3 / self.width
    }

    fn pixel(&self, x: usize, y: usize) -> [u8; 3] {
        let i = (y * self.width + x) * 3;
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }

    /// Pixels matching `pred` inside rows `y0..y1`, and their mean x.
    #[must_use]
    pub fn find(&self, y0: usize, y1: usize, pred: impl Fn([u8; 3]) -> bool) -> (usize, f64) {
        let (mut n, mut sum_x) = (0usize, 0usize);
        for y in y0..y1.min(self.height()) {
            for x in 0..self.width {
                if pred(self.pixel(x, y)) {
                    n += 1;
                    sum_x += x;
                }
            }
        }
        (n, if n == 0 { 0.0 } else { sum_x as f64 / n as f64 })
    }

    /// How many pixels match `pred`, and the smallest rectangle holding them.
    #[must_use]
    pub fn region(&self, pred: impl Fn([u8; 3]) -> bool) -> (usize, Option<Rect>) {
        let (mut n, mut x0, mut x1, mut y0, mut y1) = (0usize, usize::MAX, 0usize, usize::MAX, 0usize);
        for y in 0..self.height() {
            for x in 0..self.width {
                if pred(self.pixel(x, y)) {
                    n += 1;
                    x0 = x0.min(x);
                    x1 = x1.max(x + 1);
                    y0 = y0.min(y);
                    y1 = y1.max(y + 1);
                }
            }
        }
        (n, (n > 0).then(|| Rect::new(x0 as f64, x1 as f64, y0 as f64, y1 as f64)))
    }
}

/// Whether a pixel is `colour`, allowing for what 4:2:0 encoding and
/// scaling do to a flat colour (a blend with the background at an edge is
/// not the colour).
pub fn looks_like(colour: [u8; 3]) -> impl Fn([u8; 3]) -> bool {
    move |p| p.iter().zip(colour).all(|(&a, b)| a.abs_diff(b) < 70)
}

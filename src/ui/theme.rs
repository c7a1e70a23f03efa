//! The theme's colours as the views use them, and their WCAG 2.2 contrast.
//!
//! The colours live in `ui/theme.slint` (one place for the views); this module reads
//! them back from a window's `Theme` global and lists every text/background pair the
//! views draw, so a test can hold each pair to WCAG 2.2 AA. It does not choose colours.

use slint::{Color, ComponentHandle};

use super::Theme;

/// What a colour pair is used for, which sets the contrast it needs (WCAG 2.2 AA).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// Body text under 24 px regular / 18.66 px bold: at least 4.5:1 (SC 1.4.3).
    Text,
    /// Large text (≥ 24 px, or ≥ 18.66 px bold): at least 3:1 (SC 1.4.3).
    LargeText,
    /// Borders and marks of controls: at least 3:1 (SC 1.4.11).
    Component,
}

impl Use {
    /// The least contrast ratio WCAG 2.2 AA asks for this use.
    pub fn minimum(self) -> f64 {
        match self {
            Use::Text => 4.5,
            Use::LargeText | Use::Component => 3.0,
        }
    }
}

/// One foreground drawn on one background somewhere in the views.
#[derive(Debug, Clone, Copy)]
pub struct Pair {
    /// Where it is used, for the test's message.
    pub name: &'static str,
    /// Text or mark colour.
    pub fg: Color,
    /// Background colour.
    pub bg: Color,
    /// What it is, which sets the needed ratio.
    pub usage: Use,
}

/// Relative luminance of an sRGB colour (WCAG 2.2, "relative luminance").
pub fn luminance(c: Color) -> f64 {
    fn channel(v: u8) -> f64 {
        let s = f64::from(v) / 255.0;
        if s <= 0.04045 {
            s / 12.92
        } else {
            ((s + 0.055) / 1.055).powf(2.4)
        }
    }
    0.2126 * channel(c.red()) + 0.7152 * channel(c.green()) + 0.0722 * channel(c.blue())
}

/// Contrast ratio of two colours, from 1 to 21 (WCAG 2.2, "contrast ratio").
pub fn contrast_ratio(a: Color, b: Color) -> f64 {
    let (la, lb) = (luminance(a), luminance(b));
    let (hi, lo) = if la >= lb { (la, lb) } else { (lb, la) };
    (hi + 0.05) / (lo + 0.05)
}

/// Every foreground/background pair the views draw, read from `window`'s theme.
/// Text is at least 24 px everywhere, so WCAG would call all of it large; it is held to
/// the body-text ratio anyway, since elderly residents read it.
pub fn pairs<C: ComponentHandle>(window: &C) -> Vec<Pair>
where
    for<'a> Theme<'a>: slint::Global<'a, C>,
{
    let t = window.global::<Theme>();
    let p = |name, fg, bg, usage| Pair { name, fg, bg, usage };
    vec![
        p("ink on surface", t.get_ink(), t.get_surface(), Use::Text),
        p("ink on panel", t.get_ink(), t.get_panel(), Use::Text),
        p("muted ink on surface", t.get_ink_muted(), t.get_surface(), Use::Text),
        p("muted ink on panel", t.get_ink_muted(), t.get_panel(), Use::Text),
        p("text on accent button", t.get_on_accent(), t.get_accent(), Use::Text),
        p("text on pressed accent button", t.get_on_accent(), t.get_header(), Use::Text),
        p("title bar text", t.get_on_header(), t.get_header(), Use::Text),
        p("error text", t.get_error_ink(), t.get_error_bg(), Use::Text),
        p("error text on surface", t.get_error_ink(), t.get_surface(), Use::Text),
        p("error text on panel", t.get_error_ink(), t.get_panel(), Use::Text),
        p("card prompt text", t.get_notice_ink(), t.get_notice_bg(), Use::Text),
        p("success text on panel", t.get_ok_ink(), t.get_panel(), Use::Text),
        p("success text on surface", t.get_ok_ink(), t.get_surface(), Use::Text),
        p("key and field border on surface", t.get_outline(), t.get_surface(), Use::Component),
        p("key and field border on panel", t.get_outline(), t.get_panel(), Use::Component),
        p("selected choice border", t.get_accent(), t.get_panel(), Use::Component),
        p("error border on surface", t.get_error_ink(), t.get_surface(), Use::Component),
        p("notice border on surface", t.get_notice_ink(), t.get_surface(), Use::Component),
        p("title bar on surface", t.get_header(), t.get_surface(), Use::Component),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_matches_known_values() {
        let black = Color::from_rgb_u8(0, 0, 0);
        let white = Color::from_rgb_u8(255, 255, 255);
        assert!((contrast_ratio(black, white) - 21.0).abs() < 1e-9);
        assert!((contrast_ratio(white, white) - 1.0).abs() < 1e-9);
        // #767676 on white is the well-known 4.54:1 grey.
        let grey = Color::from_rgb_u8(0x76, 0x76, 0x76);
        let r = contrast_ratio(grey, white);
        assert!((r - 4.54).abs() < 0.01, "{r}");
        assert_eq!(contrast_ratio(grey, white), contrast_ratio(white, grey));
    }

    #[test]
    fn every_theme_pair_meets_wcag_aa() {
        i_slint_backend_testing::init_no_event_loop();
        for window_pairs in [
            pairs(&super::super::StaffWindow::new().unwrap()),
            pairs(&super::super::ResidentWindow::new().unwrap()),
        ] {
            assert!(window_pairs.len() >= 15);
            for pair in window_pairs {
                let r = contrast_ratio(pair.fg, pair.bg);
                assert!(
                    r >= pair.usage.minimum(),
                    "{}: {r:.2}:1 is under {}:1",
                    pair.name,
                    pair.usage.minimum()
                );
            }
        }
    }
}

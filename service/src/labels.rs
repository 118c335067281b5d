//! A device label's QR code: the payload (`tether:pair?…`, see
//! `tether_proto::setup_code::QrPayload`) drawn for a terminal, as SVG and as PNG.

use anyhow::Context;
use qrcode::render::{svg, unicode};
use qrcode::{Color, EcLevel, QrCode};

/// Pixels per module in the PNG.
const PNG_SCALE: usize = 8;
/// Modules of white border around the code (the QR standard asks for four).
const QUIET_ZONE: usize = 4;

fn code(payload: &str) -> anyhow::Result<QrCode> {
    QrCode::with_error_correction_level(payload.as_bytes(), EcLevel::M)
        .context("the payload does not fit a QR code")
}

/// The code in half-block characters, for a terminal.
pub fn terminal(payload: &str) -> anyhow::Result<String> {
    Ok(code(payload)?
        .render::<unicode::Dense1x2>()
        .dark_color(unicode::Dense1x2::Light)
        .light_color(unicode::Dense1x2::Dark)
        .build())
}

/// The code as an SVG document.
pub fn svg(payload: &str) -> anyhow::Result<String> {
    Ok(code(payload)?
        .render::<svg::Color<'_>>()
        .min_dimensions(256, 256)
        .build())
}

/// The code as a grayscale PNG.
pub fn png(payload: &str) -> anyhow::Result<Vec<u8>> {
    let code = code(payload)?;
    let width = code.width();
    let colors = code.to_colors();
    let side = (width + 2 * QUIET_ZONE) * PNG_SCALE;
    let mut pixels = vec![0xffu8; side * side];
    for (i, color) in colors.iter().enumerate() {
        if *color != Color::Dark {
            continue;
        }
        let (mx, my) = (i % width + QUIET_ZONE, i / width + QUIET_ZONE);
        for y in my * PNG_SCALE..(my + 1) * PNG_SCALE {
            pixels[y * side + mx * PNG_SCALE..y * side + (mx + 1) * PNG_SCALE].fill(0);
        }
    }
    let mut out = Vec::new();
    let side = u32::try_from(side).context("the image is too large")?;
    let mut encoder = png::Encoder::new(&mut out, side, side);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().context("PNG header")?;
    writer.write_image_data(&pixels).context("PNG data")?;
    writer.finish().context("PNG end")?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAYLOAD: &str =
        "tether:pair?v=1&pk=p1aaaaaaaaaaaaaa&uuid=u1bbbbbbbbbbbbbbbbbb&code=0123456789";

    #[test]
    fn the_code_renders_for_a_terminal_as_svg_and_as_png() {
        let text = terminal(PAYLOAD).expect("renders");
        assert!(text.lines().count() > 10 && text.contains('▀'));
        let svg = svg(PAYLOAD).expect("renders");
        assert!(svg.starts_with("<?xml") && svg.contains("<svg"));
        let png = png(PAYLOAD).expect("renders");
        let decoder = png::Decoder::new(std::io::Cursor::new(&png));
        let reader = decoder.read_info().expect("a valid PNG");
        let info = reader.info();
        let modules = code(PAYLOAD).expect("encodes").width();
        assert_eq!(info.width as usize, (modules + 2 * QUIET_ZONE) * PNG_SCALE);
        assert_eq!(info.width, info.height);
    }
}

//! Text forms of the values a dump writes that JSON and CSV have no type
//! for: bytes (base64), UUIDs (hyphenated) and timestamps (ISO 8601, UTC).

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// RFC 4648 base64, standard alphabet, padded.
pub fn base64(bytes: &[u8], out: &mut Vec<u8>) {
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(BASE64[((n >> (18 - 6 * i)) & 63) as usize]);
            } else {
                out.push(b'=');
            }
        }
    }
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, lowercase, bytes in stored order
/// (as the engine renders a UUID).
pub fn uuid(u: &[u8; 16], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in u.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push(b'-');
        }
        out.push(HEX[usize::from(b >> 4)]);
        out.push(HEX[usize::from(b & 15)]);
    }
}

/// Microseconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SS.ffffffZ` (UTC,
/// always six fraction digits, so no value is rounded). Years outside
/// 0000..=9999 take the expanded form `±YYYYYY` that ECMAScript's
/// `toISOString` also uses; every i64 fits.
pub fn datetime(micros: i64, out: &mut Vec<u8>) {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let year = if (0..=9999).contains(&y) {
        format!("{y:04}")
    } else {
        format!("{}{:06}", if y < 0 { '-' } else { '+' }, y.unsigned_abs())
    };
    let text = format!("{year}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:06}Z", sod / 3600, sod / 60 % 60, sod % 60);
    out.extend_from_slice(text.as_bytes());
}

/// The proleptic Gregorian date of a day number (days since 1970-01-01),
/// after Howard Hinnant's `civil_from_days`.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn base64_pads_like_rfc_4648() {
        for (input, expected) in
            [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE=")]
        {
            assert_eq!(text(|o| base64(input.as_bytes(), o)), expected);
        }
        assert_eq!(text(|o| base64(&[0xff, 0xfe, 0x00], o)), "//4A");
    }

    #[test]
    fn uuid_is_hyphenated_lowercase() {
        let u: [u8; 16] = std::array::from_fn(|i| (i as u8) * 17);
        assert_eq!(text(|o| uuid(&u, o)), "00112233-4455-6677-8899-aabbccddeeff");
    }

    #[test]
    fn datetime_is_exact_utc_across_the_whole_range() {
        assert_eq!(text(|o| datetime(0, o)), "1970-01-01T00:00:00.000000Z");
        assert_eq!(text(|o| datetime(-1, o)), "1969-12-31T23:59:59.999999Z");
        assert_eq!(text(|o| datetime(951_782_400_000_001, o)), "2000-02-29T00:00:00.000001Z");
        assert_eq!(text(|o| datetime(1_796_637_845_123_456, o)), "2026-12-07T10:04:05.123456Z");
        assert_eq!(text(|o| datetime(253_402_300_799_999_999, o)), "9999-12-31T23:59:59.999999Z");
        assert_eq!(text(|o| datetime(253_402_300_800_000_000, o)), "+010000-01-01T00:00:00.000000Z");
        assert_eq!(text(|o| datetime(-62_167_219_200_000_000, o)), "0000-01-01T00:00:00.000000Z");
        assert_eq!(text(|o| datetime(-62_167_219_200_000_001, o)), "-000001-12-31T23:59:59.999999Z");
        // ECMAScript's own limits (±8.64e15 ms), as `toISOString` writes them.
        assert_eq!(text(|o| datetime(8_640_000_000_000_000_000, o)), "+275760-09-13T00:00:00.000000Z");
        assert_eq!(text(|o| datetime(-8_640_000_000_000_000_000, o)), "-271821-04-20T00:00:00.000000Z");
        for extreme in [i64::MAX, i64::MIN] {
            assert_eq!(text(|o| datetime(extreme, o)).len(), "+294247-01-10T04:00:54.775807Z".len());
        }
    }
}

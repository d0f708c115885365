//! Formatting of bytes in hex, numbers and addresses for the request path and the audit
//! log, without `core::fmt`:
//! `Ipv4Addr`'s `Display` goes through the formatting machinery and a padding pass, and a
//! request formats its client's address up to three times (X-Forwarded-For, the audit
//! line's `client` and `peer`).

use std::net::{IpAddr, SocketAddr};

/// Writes `n` in decimal at the end of `buf[..end]`; returns where the digits start.
fn digits(buf: &mut [u8], end: usize, n: u64) -> usize {
    let mut i = end;
    let mut n = n;
    loop {
        i -= 1;
        // `n % 10` is below 10, so the byte is an ASCII digit.
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return i;
        }
    }
}

/// `b` as two lower-case hex digits.
pub fn hex(b: u8) -> [u8; 2] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    [HEX[usize::from(b >> 4)], HEX[usize::from(b & 0x0f)]]
}

/// Appends `b` as two lower-case hex digits.
pub fn push_hex(out: &mut String, b: u8) {
    let [hi, lo] = hex(b);
    out.push(char::from(hi));
    out.push(char::from(lo));
}

/// Appends `n` in decimal.
pub fn push_u16(out: &mut String, n: u16) {
    let mut buf = [0u8; 5];
    let start = digits(&mut buf, 5, u64::from(n));
    // Only ASCII digits were written.
    out.push_str(std::str::from_utf8(&buf[start..]).unwrap_or_default());
}

/// Appends `n` in decimal.
pub fn push_u64(out: &mut String, n: u64) {
    let mut buf = [0u8; 20];
    let start = digits(&mut buf, 20, n);
    // Only ASCII digits were written.
    out.push_str(std::str::from_utf8(&buf[start..]).unwrap_or_default());
}

/// Appends `ip` as `Display` would write it (dotted quad; RFC 5952 text for IPv6).
pub fn push_ip(out: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            // Written back to front: the last octet first.
            let mut buf = [0u8; 15];
            let mut start = buf.len();
            for (i, octet) in v4.octets().into_iter().rev().enumerate() {
                if i > 0 {
                    start -= 1;
                    buf[start] = b'.';
                }
                start = digits(&mut buf, start, u64::from(octet));
            }
            // Only ASCII digits and dots were written.
            out.push_str(std::str::from_utf8(&buf[start..]).unwrap_or_default());
        }
        IpAddr::V6(v6) => {
            use std::fmt::Write;
            let _ = write!(out, "{v6}");
        }
    }
}

/// Appends `addr` as `Display` would write it (`1.2.3.4:80`, `[::1]:80`).
pub fn push_socket_addr(out: &mut String, addr: SocketAddr) {
    match addr {
        SocketAddr::V4(a) => push_ip(out, IpAddr::V4(*a.ip())),
        SocketAddr::V6(a) => {
            use std::fmt::Write;
            let _ = write!(out, "[{}", a.ip());
            if a.scope_id() != 0 {
                let _ = write!(out, "%{}", a.scope_id());
            }
            out.push(']');
        }
    }
    out.push(':');
    push_u16(out, addr.port());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_display_writes_them() {
        for n in [0, 7, 10, 99, 100, 65_535, 1_000_000, u64::MAX - 1, u64::MAX] {
            let mut s = String::new();
            push_u64(&mut s, n);
            assert_eq!(s, n.to_string());
        }
        for n in [0, 9, 10, 255, 9_999, 10_000, u16::MAX] {
            let mut s = String::new();
            push_u16(&mut s, n);
            assert_eq!(s, n.to_string());
        }
    }

    #[test]
    fn addresses_read_as_display_writes_them() {
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "255.255.255.255",
            "10.20.3.100",
            "::1",
            "2001:db8::8:800:200c:417a",
            "::ffff:1.2.3.4",
        ] {
            let ip: IpAddr = ip.parse().expect("ip");
            let mut s = String::new();
            push_ip(&mut s, ip);
            assert_eq!(s, ip.to_string());
        }
        for addr in [
            "127.0.0.1:0",
            "1.2.3.4:65535",
            "[::1]:8080",
            "[fe80::1%3]:443",
        ] {
            let addr: SocketAddr = addr.parse().expect("addr");
            let mut s = String::new();
            push_socket_addr(&mut s, addr);
            assert_eq!(s, addr.to_string());
        }
    }
}

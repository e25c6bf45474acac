//! Binding listening sockets the way a server wants them.

use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

use crate::NetError;

/// The listen backlog: deep enough that a burst of thousands of connects is not dropped.
pub const DEFAULT_BACKLOG: i32 = 4096;

fn socket_for(addr: SocketAddr, ty: Type, protocol: Protocol) -> std::io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), ty, Some(protocol))?;
    if let SocketAddr::V6(v6) = addr {
        // `[::]` means every address of both families; a concrete IPv6 address means
        // just that address.
        socket.set_only_v6(!v6.ip().is_unspecified())?;
    }
    Ok(socket)
}

/// Binds a non-blocking TCP listener on `addr` with `SO_REUSEADDR` (so a restarted server
/// does not wait out TIME_WAIT), dual stack for `[::]`, and the given backlog.
pub fn bind_tcp(addr: SocketAddr, backlog: i32) -> Result<std::net::TcpListener, NetError> {
    let bind = || -> std::io::Result<std::net::TcpListener> {
        let socket = socket_for(addr, Type::STREAM, Protocol::TCP)?;
        socket.set_reuse_address(true)?;
        socket.bind(&addr.into())?;
        socket.listen(backlog)?;
        socket.set_nonblocking(true)?;
        Ok(socket.into())
    };
    bind().map_err(|source| NetError::Bind { addr, source })
}

/// Binds a non-blocking UDP socket on `addr`, dual stack for `[::]`.
pub fn bind_udp(addr: SocketAddr) -> Result<std::net::UdpSocket, NetError> {
    let bind = || -> std::io::Result<std::net::UdpSocket> {
        let socket = socket_for(addr, Type::DGRAM, Protocol::UDP)?;
        socket.bind(&addr.into())?;
        socket.set_nonblocking(true)?;
        Ok(socket.into())
    };
    bind().map_err(|source| NetError::Bind { addr, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_bind_on_a_port_in_use_says_so() {
        let first = bind_tcp("127.0.0.1:0".parse().unwrap(), 16).unwrap();
        let addr = first.local_addr().unwrap();
        let err = bind_tcp(addr, 16).unwrap_err();
        assert!(err.to_string().contains("already in use"), "{err}");
    }

    #[test]
    fn unspecified_ipv6_is_dual_stack() {
        let listener = bind_tcp("[::]:0".parse().unwrap(), 16).unwrap();
        let port = listener.local_addr().unwrap().port();
        std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    }
}

//! Private Docker networks with static addresses.
//!
//! Static container IPs need a user-chosen subnet (`docker run --ip` is
//! refused on networks with an engine-chosen one), so each run picks random
//! `10.x.y.0/24` subnets that overlap neither an existing Docker network (the
//! engine refuses those: retry) nor a host route (checked here: the engine
//! does not, and an overlap would silently misroute the tests' packets).
//!
//! Networks are `--internal`: no gateway, hence no default route inside the
//! containers. That is what makes `docker network disconnect` a real
//! partition when a container sits on two networks: with a default route via
//! the other network, peers' packets would be routed around the cut through
//! the host.

use std::net::Ipv4Addr;

use anyhow::bail;
use rand::Rng;

use super::engine::Docker;

/// A created network: its name and /24 subnet.
#[derive(Debug, Clone)]
pub struct Network {
    /// Engine-wide unique name.
    pub name: String,
    /// First address of the /24.
    pub base: Ipv4Addr,
}

impl Network {
    /// The address of host number `host` (1 is the bridge's own address).
    pub fn ip(&self, host: u8) -> Ipv4Addr {
        let [a, b, c, _] = self.base.octets();
        Ipv4Addr::new(a, b, c, host)
    }
}

/// Create internal network `name` on a free random /24. The name is
/// recorded in `created` before the call, so cleanup covers a create that
/// failed half-way.
pub async fn create(docker: &Docker, name: &str, created: &mut Vec<String>) -> anyhow::Result<Network> {
    created.push(name.to_owned());
    let mut last = String::new();
    for _ in 0..12 {
        let base = {
            let mut rng = rand::rng();
            Ipv4Addr::new(10, rng.random_range(200..=250), rng.random(), 0)
        };
        if overlaps_host_route(base) {
            continue;
        }
        let subnet = format!("{base}/24");
        let mut args = vec!["network", "create", "--driver", "bridge", "--internal", "--subnet", &subnet];
        let labels = Docker::labels();
        args.extend(labels.iter().map(String::as_str));
        args.push(name);
        match docker.run(&args).await {
            Ok(_) => return Ok(Network { name: name.to_owned(), base }),
            // Another network holds this subnet: try another.
            Err(e) => last = format!("{e:#}"),
        }
    }
    bail!("no free subnet for network {name}: {last}")
}

/// True when `base/24` overlaps a route in the host's main table (the
/// default route excepted: every address "overlaps" it).
fn overlaps_host_route(base: Ipv4Addr) -> bool {
    let Ok(table) = std::fs::read_to_string("/proc/net/route") else {
        return false;
    };
    let ours = u32::from(base);
    table.lines().skip(1).any(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let hex = |i: usize| cols.get(i).and_then(|s| u32::from_str_radix(s, 16).ok());
        // /proc/net/route prints the network-order bytes read as a native u32.
        let (Some(dest), Some(mask)) = (hex(1), hex(7)) else { return false };
        let (dest, mask) = (u32::from_be_bytes(dest.to_ne_bytes()), u32::from_be_bytes(mask.to_ne_bytes()));
        if mask == 0 {
            return false;
        }
        // Two prefixes overlap iff they agree under the shorter mask.
        let shorter = mask & 0xffff_ff00;
        dest & shorter == ours & shorter
    })
}

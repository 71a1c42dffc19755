//! Real local services for tests: fresh PostgreSQL databases, Redis, and
//! private redis-server instances that a test may kill.

#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub fn redis_url() -> String {
    std::env::var("TALOS_TEST_REDIS_ADDR").unwrap_or_else(|_| "127.0.0.1:6379".into())
}

/// Panics with instructions when Redis does not answer.
pub async fn require_redis(addr: &str) {
    if tokio::net::TcpStream::connect(addr).await.is_err() {
        panic!(
            "Redis is not reachable at {addr}. Start it with \
             `redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save \"\" --appendonly no` \
             or set TALOS_TEST_REDIS_ADDR."
        );
    }
}

#[cfg(feature = "postgres")]
pub mod pg {
    use sqlx::{Connection, PgConnection};

    pub fn base_url() -> String {
        std::env::var("TALOS_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
    }

    async fn admin() -> PgConnection {
        PgConnection::connect(&base_url())
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "PostgreSQL is not reachable ({e}). Start it with \
                 `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` \
                 or set TALOS_TEST_POSTGRES_URL."
                )
            })
    }

    /// A fresh database; dropped by [`FreshDb`]'s `drop_now`.
    pub struct FreshDb {
        pub name: String,
        pub url: String,
    }

    impl FreshDb {
        pub async fn create() -> FreshDb {
            let name = format!("talos_it_{}", uuid::Uuid::new_v4().simple());
            let mut c = admin().await;
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut c)
                .await
                .unwrap();
            let base = base_url();
            let (main, _) = base.split_once('?').unwrap_or((&base, ""));
            let url = format!("{}/{name}", &main[..main.rfind('/').unwrap()]);
            FreshDb { name, url }
        }

        pub async fn drop_now(self) {
            let mut c = admin().await;
            let _ = sqlx::query(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut c)
            .await;
        }
    }
}

/// A private redis-server on a free port, killed on drop.
pub struct PrivateRedis {
    pub port: u16,
    child: Option<Child>,
}

impl PrivateRedis {
    pub async fn start() -> PrivateRedis {
        let port = free_port();
        let mut r = PrivateRedis { port, child: None };
        r.restart().await;
        r
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub async fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &self.port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (apt-get install redis-server)");
        self.child = Some(child);
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(self.addr()).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("private redis-server did not start on {}", self.addr());
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// What a [`CutProxy`] does with connections while cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cut {
    /// Accept and close at once (a refused/reset connection).
    Refuse,
    /// Accept and never answer (a network black hole: only timeouts help).
    Blackhole,
}

/// A TCP proxy on loopback between the server and a real service, which a
/// test can cut (dropping every live connection) and restore.
pub struct CutProxy {
    pub port: u16,
    state: std::sync::Arc<std::sync::Mutex<ProxyState>>,
    accept: tokio::task::JoinHandle<()>,
}

struct ProxyState {
    cut: Option<Cut>,
    live: Vec<tokio::task::JoinHandle<()>>,
    held: Vec<tokio::net::TcpStream>,
}

impl CutProxy {
    pub async fn start(target: &str) -> CutProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = std::sync::Arc::new(std::sync::Mutex::new(ProxyState {
            cut: None,
            live: Vec::new(),
            held: Vec::new(),
        }));
        let st = state.clone();
        let target = target.to_string();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let cut = st.lock().unwrap().cut;
                match cut {
                    Some(Cut::Refuse) => drop(inbound),
                    Some(Cut::Blackhole) => st.lock().unwrap().held.push(inbound),
                    None => {
                        let target = target.clone();
                        let task = tokio::spawn(async move {
                            if let Ok(mut out) = tokio::net::TcpStream::connect(&target).await {
                                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                            }
                        });
                        st.lock().unwrap().live.push(task);
                    }
                }
            }
        });
        CutProxy {
            port,
            state,
            accept,
        }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Drops every live connection; new ones get `how`.
    pub fn cut(&self, how: Cut) {
        let mut st = self.state.lock().unwrap();
        st.cut = Some(how);
        for t in st.live.drain(..) {
            t.abort();
        }
    }

    pub fn restore(&self) {
        let mut st = self.state.lock().unwrap();
        st.cut = None;
        st.held.clear();
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut(Cut::Refuse);
    }
}

#[cfg(feature = "mysql")]
pub mod mysql {
    use sqlx::{Connection, MySqlConnection};

    pub fn base_url() -> String {
        std::env::var("TALOS_TEST_MYSQL_URL")
            .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into())
    }

    async fn admin() -> MySqlConnection {
        MySqlConnection::connect(&base_url())
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "MariaDB/MySQL is not reachable ({e}). Start it with \
                 `start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd` \
                 or set TALOS_TEST_MYSQL_URL."
                )
            })
    }

    /// A fresh database; dropped by `drop_now`.
    pub struct FreshDb {
        pub name: String,
        pub url: String,
    }

    impl FreshDb {
        pub async fn create() -> FreshDb {
            let name = format!("talos_it_{}", uuid::Uuid::new_v4().simple());
            let mut c = admin().await;
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut c)
                .await
                .unwrap();
            let base = base_url();
            let (main, _) = base.split_once('?').unwrap_or((&base, ""));
            let url = format!("{}/{name}", &main[..main.rfind('/').unwrap()]);
            FreshDb { name, url }
        }

        pub async fn drop_now(self) {
            let mut c = admin().await;
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {}", self.name))
                .execute(&mut c)
                .await;
        }
    }
}

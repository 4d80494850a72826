//! The embedded AWS emulator: moto's server on a free loopback port, owned by this process.
//!
//! The Python side blocks on its standard input; when this process exits the pipe closes and
//! every server it started stops; dropping the handle stops its server. No emulator outlives
//! its owner (but `archgate local up`'s, which is detached on purpose).

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_s3::config::Credentials;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{mpsc, Mutex};
use std::time::Duration;

/// Where the project's pinned Python environment lives, relative to the workspace.
pub const PYTHON_ENV_VAR: &str = "ARCHGATE_EMULATOR_PYTHON";
/// The region local installations use unless `AWS_REGION` (or `AWS_DEFAULT_REGION`) names
/// another.
pub const DEFAULT_REGION: &str = "us-east-1";
pub const ACCOUNT: &str = "123456789012";
/// The access key and secret of local installations: the emulator accepts any.
pub const LOCAL_CREDENTIAL: &str = "archgate-local";

/// What every emulator process runs before serving.
///
/// moto's conditional writes made atomic, as the services' are: moto checks a DynamoDB
/// condition and then writes without a lock, deletes ECR images by list position, and checks
/// that a repository is new before adding it, so two concurrent handlers could both win one
/// conditional save (a lost update), delete the wrong image, or both create one repository.
/// Every write of those two services is applied one at a time; reads are not held.
///
/// And work moto repeats on every request that changes nothing: listing its own package
/// directory to route a request (once, then kept), listing a handler class's methods to
/// dispatch a request (once per class), building a JSON path parser for each path
/// of each event it delivers (kept per path), and logging each request (nothing reads that
/// log). Responses go out without Nagle's delay: moto writes the headers and the body
/// separately, and the second write would wait for the client's delayed acknowledgement.
///
/// And ECR's tag-mutability exclusion filters are wildcards (`*-amd64`), which moto compiles
/// as regular expressions (a leading `*` fails every PutImage to the repository): its ECR
/// module matches them as wildcards here, its own regular expressions as before.
///
/// And, where IAM is enforced, a request without a body (a GET) is checked against the
/// signature of an empty payload, as it was signed: moto signs the request's form data
/// instead, which for Lambda's GETs is its headers, so every signed Lambda read was refused as
/// a signature mismatch.
const EMULATOR_PATCHES: &str = r#"
import functools, logging, threading
import jsonpath_ng.ext
import moto.backends
import moto.core.responses
from moto.moto_server.werkzeug_app import MotoRequestHandler
from moto.dynamodb.models import DynamoDBBackend
from moto.ecr.models import ECRBackend
from moto.iam.access_control import IAMRequestBase
def _one_at_a_time(cls, names):
    lock = threading.RLock()
    def atomic(method):
        @functools.wraps(method)
        def wrapper(*args, **kwargs):
            with lock:
                return method(*args, **kwargs)
        return wrapper
    for name in names:
        setattr(cls, name, atomic(getattr(cls, name)))
_one_at_a_time(DynamoDBBackend, ("put_item", "update_item", "delete_item", "transact_write_items"))
_one_at_a_time(ECRBackend, ("create_repository", "put_image", "batch_delete_image"))
_moto_modules = tuple(moto.backends.list_of_moto_modules())
moto.backends.list_of_moto_modules = lambda: _moto_modules
moto.core.responses.method_names_from_class = functools.cache(moto.core.responses.method_names_from_class)
jsonpath_ng.ext.parse = functools.lru_cache(maxsize=1024)(jsonpath_ng.ext.parse)
logging.getLogger("werkzeug").setLevel(logging.ERROR)
MotoRequestHandler.disable_nagle_algorithm = True
import fnmatch, re, types
import moto.ecr.models
def _match(pattern, string, flags=0):
    if string is None:
        return None
    if pattern.startswith("^") or "(?" in pattern or ".*" in pattern:
        return re.match(pattern, string, flags)
    return fnmatch.fnmatchcase(string, pattern) or None
moto.ecr.models.re = types.SimpleNamespace(**{**vars(re), "match": _match})
_create_aws_request = IAMRequestBase._create_aws_request
def _signed_as_sent(self):
    if not self._body and self._method in ("GET", "HEAD", "DELETE"):
        self._data = {}
    return _create_aws_request(self)
IAMRequestBase._create_aws_request = _signed_as_sent
"#;

/// One Python process per owner that has imported moto's server and built the apps of the
/// services archgate reaches, and forks a server per [`Emulator::start`]: a test run starts a
/// hundred emulators, and that work (over a second of CPU each time) is paid once. The
/// servers are ThreadedMotoServer's (the same application and request handler); each fork
/// holds its own services' state. Each server
/// ends when it is stopped, when the fork server ends (its owner's pipe closed), or both.
const FORK_SERVER_SCRIPT: &str = r#"
import os, signal, sys, threading, time
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from moto.core.utils import get_service_model
from werkzeug.serving import make_server
# What ThreadedMotoServer serves, with the apps of the services archgate reaches built once,
# and their models loaded once (moto otherwise parses a service's model from botocore's JSON
# in every forked server, on its first request to that service).
app = DomainDispatcherApplication(create_backend_app)
for name in ("s3", "ecr", "dynamodb", "events", "codebuild", "kms", "sqs", "ecs", "awslambda", "iam", "sts", "inspector2", "moto_api"):
    try:
        app.app_instances[name] = create_backend_app(name)
        get_service_model({"awslambda": "lambda"}.get(name, name))
    except Exception:
        pass
signal.signal(signal.SIGCHLD, signal.SIG_IGN)
children = set()
for line in sys.stdin:
    words = line.split()
    if words[:1] == ["start"]:
        settings = dict(word.split("=", 1) for word in words[1:] if "=" in word)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            os.environ.update(settings)
            if "INITIAL_NO_AUTH_ACTION_COUNT" in settings:
                # moto read this one at import: the fork takes it where moto looks per request.
                import moto.settings
                moto.settings.INITIAL_NO_AUTH_ACTION_COUNT = float(settings["INITIAL_NO_AUTH_ACTION_COUNT"])
            parent = os.getppid()
            try:
                server = make_server("127.0.0.1", 0, app, True, request_handler=MotoRequestHandler)
                threading.Thread(target=server.serve_forever, daemon=True).start()
                host, port = server.server_address[:2]
                os.write(w, f"READY http://{host}:{port}\n".encode())
            except Exception as error:
                os.write(w, f"FAILED {error!r}\n".encode())
                os._exit(1)
            os.close(w)
            while os.getppid() == parent:
                time.sleep(0.5)
            os._exit(0)
        os.close(w)
        with os.fdopen(r) as answer:
            ready = answer.readline().strip() or "FAILED the server ended before it was ready"
        children.add(pid)
        print(f"{ready} {pid}", flush=True)
    elif words[:1] == ["stop"] and len(words) == 2:
        pid = int(words[1])
        children.discard(pid)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
for pid in children:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
"#;

/// The same server for `archgate local up`: it outlives the command and runs until it is
/// stopped (`archgate local down` sends it SIGTERM).
const DETACHED_SCRIPT: &str = r#"
import sys, threading
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
host, port = server.get_host_and_port()
print(f"READY http://{host}:{port}", flush=True)
sys.stdout.close()
threading.Event().wait()
"#;

#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error(
        "no Python with moto's server found; tried {looked}. Install it (`pip install 'moto[server]'`), set {PYTHON_ENV_VAR} to a Python that has it, or run `./dev setup` in a clone of archgate"
    )]
    NoPython { looked: String },
    #[error("could not start the emulator with {python}")]
    Spawn {
        python: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the emulator did not report ready within {0:?}: {1}")]
    NotReady(Duration, String),
}

pub struct Emulator {
    /// The server's process, a child of the fork server.
    pid: u32,
    endpoint: String,
}

/// The fork server of this process, started by the first [`Emulator::start`].
struct ForkServer {
    child: Child,
    stdin: ChildStdin,
    answers: mpsc::Receiver<String>,
    stderr_tail: mpsc::Receiver<String>,
}

static FORK_SERVER: Mutex<Option<ForkServer>> = Mutex::new(None);

impl ForkServer {
    fn spawn() -> Result<Self, EmulatorError> {
        let python = Emulator::python()?;
        let mut child = Command::new(&python)
            .args(["-c", &format!("{EMULATOR_PATCHES}{FORK_SERVER_SCRIPT}")])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| EmulatorError::Spawn {
                python: python.display().to_string(),
                source,
            })?;
        let stdin = child.stdin.take().expect("stdin is piped");
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (tx, answers) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Drain stderr so no server blocks on a full pipe; keep the tail for errors.
        let (err_tx, stderr_tail) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            let mut tail = Vec::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                tail.push(line);
                if tail.len() > 20 {
                    tail.remove(0);
                }
                let _ = err_tx.send(tail.join("\n"));
            }
        });
        Ok(ForkServer {
            child,
            stdin,
            answers,
            stderr_tail,
        })
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Asks for one server with these settings of moto's; its endpoint and process id.
    fn fork(&mut self, settings: &[(&str, &str)]) -> Result<(String, u32), EmulatorError> {
        let limit = Duration::from_secs(60);
        let line: String = settings
            .iter()
            .map(|(name, value)| format!(" {name}={value}"))
            .collect();
        let asked = writeln!(self.stdin, "start{line}").and_then(|()| self.stdin.flush());
        let line = match asked {
            Ok(()) => self.answers.recv_timeout(limit).unwrap_or_default(),
            Err(error) => error.to_string(),
        };
        let parsed = line.strip_prefix("READY ").and_then(|rest| {
            let (endpoint, pid) = rest.rsplit_once(' ')?;
            Some((endpoint.to_owned(), pid.parse().ok()?))
        });
        parsed.ok_or_else(|| {
            let stderr_tail = self.stderr_tail.try_iter().last().unwrap_or_default();
            EmulatorError::NotReady(limit, format!("{line} {stderr_tail}").trim().to_owned())
        })
    }
}

impl Emulator {
    /// A Python that has moto's server, in this order: `ARCHGATE_EMULATOR_PYTHON`; `.venv`
    /// in the current directory; the environment of the clone this binary was built in; the
    /// interpreter of a `moto_server` on `PATH`; `python3` on `PATH` if it can import moto.
    pub fn python() -> Result<PathBuf, EmulatorError> {
        if let Some(path) = std::env::var_os(PYTHON_ENV_VAR) {
            return Ok(PathBuf::from(path));
        }
        let mut looked = vec![format!("{PYTHON_ENV_VAR} (not set)")];
        for venv in [
            PathBuf::from(".venv/bin/python"),
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python"),
        ] {
            if venv.exists() {
                return Ok(venv);
            }
            looked.push(venv.display().to_string());
        }
        match on_path("moto_server").and_then(|script| shebang_interpreter(&script)) {
            Some(python) => return Ok(python),
            None => looked.push("the interpreter of moto_server on PATH".to_owned()),
        }
        if let Some(python) = on_path("python3").filter(|python| has_moto(python)) {
            return Ok(python);
        }
        looked.push("python3 on PATH (without moto)".to_owned());
        Err(EmulatorError::NoPython {
            looked: looked.join(", "),
        })
    }

    /// A new emulator with nothing in it, forked from this process's fork server (started,
    /// or started again, when needed).
    pub fn start() -> Result<Self, EmulatorError> {
        Self::start_with(&[])
    }

    /// [`Emulator::start`] with some of moto's settings (environment variables it reads when
    /// it serves a request, such as `MOTO_LAMBDA_STUB_ECR`; no spaces in names or values).
    pub fn start_with(settings: &[(&str, &str)]) -> Result<Self, EmulatorError> {
        let mut slot = FORK_SERVER
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !slot.as_mut().is_some_and(ForkServer::alive) {
            *slot = Some(ForkServer::spawn()?);
        }
        let server = slot.as_mut().expect("started above");
        let (endpoint, pid) = server.fork(settings)?;
        Ok(Emulator { pid, endpoint })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Starts a server that outlives this process, in its own process group; returns its
    /// process id and endpoint.
    pub fn start_detached() -> Result<(u32, String), EmulatorError> {
        use std::os::unix::process::CommandExt;
        let python = Self::python()?;
        let mut child = Command::new(&python)
            .args(["-c", &format!("{EMULATOR_PATCHES}{DETACHED_SCRIPT}")])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|source| EmulatorError::Spawn {
                python: python.display().to_string(),
                source,
            })?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let limit = Duration::from_secs(60);
        let line = rx.recv_timeout(limit).unwrap_or_default();
        match line.trim().strip_prefix("READY ") {
            Some(endpoint) => Ok((child.id(), endpoint.to_owned())),
            None => {
                let _ = child.kill();
                Err(EmulatorError::NotReady(limit, "no READY line".to_owned()))
            }
        }
    }

    pub async fn sdk_config(&self) -> SdkConfig {
        sdk_config_for(&self.endpoint).await
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let mut slot = FORK_SERVER
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(server) = slot.as_mut() {
            let _ = writeln!(server.stdin, "stop {}", self.pid).and_then(|()| server.stdin.flush());
        }
    }
}

/// The region of a local installation: `AWS_REGION`, else `AWS_DEFAULT_REGION`, else
/// us-east-1. (S3 and others behave differently outside us-east-1; the tests run in others.)
pub fn region() -> String {
    ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
        .unwrap_or_else(|| DEFAULT_REGION.to_owned())
}

/// SDK configuration for a local endpoint: the local region, throwaway credentials.
pub async fn sdk_config_for(endpoint: &str) -> SdkConfig {
    sdk_config_in(endpoint, &region()).await
}

/// SDK configuration for a local endpoint in `region`.
pub async fn sdk_config_in(endpoint: &str, region: &str) -> SdkConfig {
    let local = Credentials::new(
        LOCAL_CREDENTIAL,
        LOCAL_CREDENTIAL,
        None,
        None,
        LOCAL_CREDENTIAL,
    );
    sdk_config_with(endpoint, region, local).await
}

/// SDK configuration for a local endpoint in `region`, signing as an IAM user (an emulator
/// that enforces IAM checks the signature and the user's policies).
pub async fn sdk_config_as(endpoint: &str, region: &str, user: &UserKeys) -> SdkConfig {
    let keys = Credentials::new(
        &user.access_key_id,
        &user.secret_access_key,
        None,
        None,
        "archgate-iam-user",
    );
    sdk_config_with(endpoint, region, keys).await
}

async fn sdk_config_with(endpoint: &str, region: &str, credentials: Credentials) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(archgate::aws::http_client_trusting(None))
        .endpoint_url(endpoint)
        .region(Region::new(region.to_owned()))
        .credentials_provider(credentials)
        .load()
        .await
}

/// S3 against an emulator needs path-style addressing (no per-bucket host names).
pub fn s3_client(sdk: &SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(true)
            .build(),
    )
}

/// POSTs JSON to the emulator's own control API (`/moto-api/...`), e.g. to configure the scan
/// findings ECR will report. Returns the HTTP status.
pub fn control_api_post(endpoint: &str, path: &str, body: &str) -> std::io::Result<u16> {
    let response = post(endpoint, path, "application/json", "", body)?;
    response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| {
            std::io::Error::other(format!(
                "unexpected answer: {}",
                response.lines().next().unwrap_or("")
            ))
        })
}

/// Creates an IAM role Lambda may assume on the emulator at `endpoint` (the emulator wants a
/// function's role to exist). Returns its ARN.
pub fn create_lambda_role(endpoint: &str, name: &str) -> std::io::Result<String> {
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    iam_call(
        endpoint,
        &[
            ("Action", "CreateRole"),
            ("RoleName", name),
            ("AssumeRolePolicyDocument", policy),
        ],
    )?;
    Ok(format!("arn:aws:iam::{ACCOUNT}:role/{name}"))
}

/// An IAM user's access key and secret.
pub struct UserKeys {
    pub access_key_id: String,
    pub secret_access_key: String,
}

/// Creates an IAM user whose one inline policy is `policy` and an access key for it: three
/// IAM calls. On an emulator that enforces IAM ([`ENFORCE_IAM_AFTER`]), these are meant to be
/// among the calls it lets through unsigned.
pub fn create_user_with_policy(
    endpoint: &str,
    name: &str,
    policy: &str,
) -> std::io::Result<UserKeys> {
    iam_call(endpoint, &[("Action", "CreateUser"), ("UserName", name)])?;
    iam_call(
        endpoint,
        &[
            ("Action", "PutUserPolicy"),
            ("UserName", name),
            ("PolicyName", name),
            ("PolicyDocument", policy),
        ],
    )?;
    let answer = iam_call(
        endpoint,
        &[("Action", "CreateAccessKey"), ("UserName", name)],
    )?;
    let field = |tag: &str| {
        let open = format!("<{tag}>");
        let start = answer.find(&open)? + open.len();
        let end = start + answer[start..].find("</")?;
        Some(answer[start..end].to_owned())
    };
    match (field("AccessKeyId"), field("SecretAccessKey")) {
        (Some(access_key_id), Some(secret_access_key)) => Ok(UserKeys {
            access_key_id,
            secret_access_key,
        }),
        _ => Err(std::io::Error::other(
            "CreateAccessKey answered without a key",
        )),
    }
}

/// The moto setting that makes a server check every request's signature and its caller's IAM
/// policies once this many requests have been served (moto's actions only: it matches most
/// services' requests against resource `*`).
pub const ENFORCE_IAM_AFTER: &str = "INITIAL_NO_AUTH_ACTION_COUNT";

/// One IAM Query API call (archgate has no IAM client), unsigned; the whole answer.
fn iam_call(endpoint: &str, params: &[(&str, &str)]) -> std::io::Result<String> {
    let body: Vec<String> = params
        .iter()
        .chain(&[("Version", "2010-05-08")])
        .map(|(name, value)| format!("{name}={}", percent_encoded(value)))
        .collect();
    // The credential scope names the service: the emulator routes on it.
    let authorization = "Authorization: AWS4-HMAC-SHA256 Credential=archgate-local/20240101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0\r\n";
    let answer = post(
        endpoint,
        "/",
        "application/x-www-form-urlencoded",
        authorization,
        &body.join("&"),
    )?;
    if !answer.starts_with("HTTP/1.1 200") {
        return Err(std::io::Error::other(format!(
            "IAM {}: {}",
            params.first().map_or("", |(_, action)| action),
            answer.lines().next().unwrap_or("")
        )));
    }
    Ok(answer)
}

fn percent_encoded(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One HTTP/1.1 POST to the emulator, the whole answer read (`headers`: extra header lines,
/// each ending in CRLF). Two calls of the emulator's own, not worth an HTTP client.
fn post(
    endpoint: &str,
    path: &str,
    content_type: &str,
    headers: &str,
    body: &str,
) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let authority = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = std::net::TcpStream::connect(authority)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: {content_type}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer)
}

/// The first `name` in a directory of `PATH`.
fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

/// The interpreter a script's `#!` line names (a pip-installed `moto_server` names the
/// Python of its environment).
pub fn shebang_interpreter(script: &std::path::Path) -> Option<PathBuf> {
    let first = std::fs::read_to_string(script).ok()?;
    let line = first.lines().next()?.strip_prefix("#!")?.trim();
    let python = PathBuf::from(line.split_whitespace().next()?);
    python.is_file().then_some(python)
}

fn has_moto(python: &std::path::Path) -> bool {
    Command::new(python)
        .args(["-c", "import moto.server"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

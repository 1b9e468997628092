package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// NDJSONType is the media type of create_tar's progress stream: a client
// that accepts it gets TarProgress lines instead of one JSON answer.
const NDJSONType = "application/x-ndjson"

// DockerContainer is one environment container of
// GET /api/docker/host/containers (the original's {id, name, image,
// status}, plus its state and the replica whose Docker holds it).
type DockerContainer struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Image   string `json:"image"`
	Status  string `json:"status"`
	State   string `json:"state,omitempty"`
	Replica string `json:"replica,omitempty"`
}

// CreateContainerRequest is the body of POST /api/docker/host/create.
type CreateContainerRequest struct {
	ImageName     string `json:"image_name"`
	ContainerName string `json:"container_name"`
}

// DockerMessage is the answer of the environment operations: the
// original's {"message"} plus the replica that ran it.
type DockerMessage struct {
	Message string `json:"message"`
	Replica string `json:"replica,omitempty"`
}

// CreateTarResponse is the answer of POST /api/docker/create_tar/{name}.
type CreateTarResponse struct {
	Message     string `json:"message"`
	TarballPath string `json:"tarball_path"`
	Timestamp   int64  `json:"timestamp,omitempty"`
	Size        int64  `json:"size,omitempty"`
	Replica     string `json:"replica,omitempty"`
}

// TarProgress is one line of create_tar's progress stream. Type is
// "progress" (Stage "commit", "save" with Bytes of about Total, "done"),
// then one "result" (Result set) or "error" (Error and the HTTP Status the
// error would have had).
type TarProgress struct {
	Type   string             `json:"type"`
	Stage  string             `json:"stage,omitempty"`
	Bytes  int64              `json:"bytes,omitempty"`
	Total  int64              `json:"total,omitempty"`
	Result *CreateTarResponse `json:"result,omitempty"`
	Error  string             `json:"error,omitempty"`
	Status int                `json:"status,omitempty"`
}

// TarballVersion is one tarball of GET /api/docker/list.
type TarballVersion struct {
	Timestamp int64  `json:"timestamp"`
	Tarball   string `json:"tarball"`
	Size      int64  `json:"size"`
	// SHA256 is set on the version the cluster recorded (the one runners
	// load).
	SHA256 string `json:"sha256,omitempty"`
}

// TarballSet is one environment of GET /api/docker/list, keyed by its
// name: the original's shape plus sizes. AllVersions is newest first.
type TarballSet struct {
	LatestTimestamp int64            `json:"latest_timestamp"`
	LatestTarball   string           `json:"latest_tarball"`
	LatestSize      int64            `json:"latest_size"`
	AllVersions     []TarballVersion `json:"all_versions"`
}

// TerminalMessage is one WebSocket text frame of
// GET /api/docker/host/containers/{name}/terminal. Client to server:
// {"type":"input","data":...} and {"type":"resize","rows":R,"cols":C}.
// Server to client: {"type":"output","data":...}, {"type":"error","data":...}
// and, when the shell ends, {"type":"exit","code":N}.
type TerminalMessage struct {
	Type string `json:"type"`
	Data string `json:"data,omitempty"`
	Rows int    `json:"rows,omitempty"`
	Cols int    `json:"cols,omitempty"`
	Code *int   `json:"code,omitempty"`
}

// dockerDo is Do for the environment API: every replica is tried once, and
// a 503 (Docker unreachable there) is final instead of being waited out, so
// that the user sees the reason at once.
func (c *Client) dockerDo(ctx context.Context, method, path string, body, out any) error {
	payload, err := encodeBody(method, path, body)
	if err != nil {
		return err
	}
	a, _, err := c.round(ctx, method, path, payload, "application/json")
	if a == nil {
		return err
	}
	return a.decode(method, path, out)
}

// DockerContainers lists the environment containers of every replica
// (GET /api/docker/host/containers).
func (c *Client) DockerContainers(ctx context.Context) ([]DockerContainer, error) {
	var out []DockerContainer
	if err := c.dockerDo(ctx, http.MethodGet, "/api/docker/host/containers", nil, &out); err != nil {
		return nil, fmt.Errorf("list environment containers: %w", err)
	}
	return out, nil
}

// CreateDockerContainer creates environment container name from a local
// image on the replica that answers (POST /api/docker/host/create).
func (c *Client) CreateDockerContainer(ctx context.Context, img, name string) (DockerMessage, error) {
	var out DockerMessage
	err := c.dockerDo(ctx, http.MethodPost, "/api/docker/host/create", CreateContainerRequest{ImageName: img, ContainerName: name}, &out)
	if err != nil {
		return DockerMessage{}, fmt.Errorf("create environment %s: %w", name, err)
	}
	return out, nil
}

// StartDockerContainer starts an environment container.
func (c *Client) StartDockerContainer(ctx context.Context, name string) (DockerMessage, error) {
	return c.dockerOp(ctx, "start", name)
}

// StopDockerContainer stops an environment container.
func (c *Client) StopDockerContainer(ctx context.Context, name string) (DockerMessage, error) {
	return c.dockerOp(ctx, "stop", name)
}

// DeleteDockerContainer deletes an environment container (its tarballs
// stay).
func (c *Client) DeleteDockerContainer(ctx context.Context, name string) (DockerMessage, error) {
	return c.dockerOp(ctx, "delete", name)
}

func (c *Client) dockerOp(ctx context.Context, op, name string) (DockerMessage, error) {
	if err := checkID("environment", name); err != nil {
		return DockerMessage{}, err
	}
	var out DockerMessage
	if err := c.dockerDo(ctx, http.MethodPost, "/api/docker/host/"+op+"/"+url.PathEscape(name), nil, &out); err != nil {
		return DockerMessage{}, fmt.Errorf("%s environment %s: %w", op, name, err)
	}
	return out, nil
}

// Tarballs lists the environment tarballs in shared storage
// (GET /api/docker/list).
func (c *Client) Tarballs(ctx context.Context) (map[string]TarballSet, error) {
	out := map[string]TarballSet{}
	if err := c.dockerDo(ctx, http.MethodGet, "/api/docker/list", nil, &out); err != nil {
		return nil, fmt.Errorf("list tarballs: %w", err)
	}
	return out, nil
}

// CreateTar commits environment name and saves it as a new tarball
// (POST /api/docker/create_tar/{name}), calling progress (when set) for
// each progress line. Only ctx bounds it, not the client's Timeout.
// Replicas are tried in turn while they are unreachable or answer 503.
func (c *Client) CreateTar(ctx context.Context, name string, progress func(TarProgress)) (CreateTarResponse, error) {
	if err := checkID("environment", name); err != nil {
		return CreateTarResponse{}, err
	}
	path := "/api/docker/create_tar/" + url.PathEscape(name)
	hc := &http.Client{Transport: c.hc.Transport} // no overall timeout: ctx bounds it
	start := int(c.next.Load())
	var lastErr error
	for i := range c.hosts {
		host := c.hosts[(start+i)%len(c.hosts)]
		res, err := c.createTarAt(ctx, hc, host, path, progress)
		if err == nil {
			return res, nil
		}
		if ctx.Err() != nil {
			return CreateTarResponse{}, fmt.Errorf("create tarball of %s: %w", name, ctx.Err())
		}
		var ae *APIError
		if errors.As(err, &ae) && ae.StatusCode != http.StatusServiceUnavailable {
			return CreateTarResponse{}, fmt.Errorf("create tarball of %s: %w", name, err)
		}
		lastErr = err
	}
	var ae *APIError
	if errors.As(lastErr, &ae) {
		return CreateTarResponse{}, fmt.Errorf("create tarball of %s: %w", name, lastErr)
	}
	return CreateTarResponse{}, fmt.Errorf("create tarball of %s: %w (tried %s): %w", name, ErrNoReplica, strings.Join(c.hosts, ", "), lastErr)
}

func (c *Client) createTarAt(ctx context.Context, hc *http.Client, host, path string, progress func(TarProgress)) (CreateTarResponse, error) {
	req, err := c.newRequest(ctx, host, http.MethodPost, path, nil, NDJSONType+", application/json")
	if err != nil {
		return CreateTarResponse{}, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return CreateTarResponse{}, fmt.Errorf("%s: %w", host, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return CreateTarResponse{}, c.errorAnswer(host, resp)
	}
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), NDJSONType) {
		var out CreateTarResponse
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			return CreateTarResponse{}, fmt.Errorf("decode create_tar answer from %s: %w", host, err)
		}
		return out, nil
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var p TarProgress
		if err := json.Unmarshal(sc.Bytes(), &p); err != nil {
			return CreateTarResponse{}, fmt.Errorf("decode create_tar progress from %s: %w", host, err)
		}
		switch p.Type {
		case "result":
			if p.Result == nil {
				return CreateTarResponse{}, fmt.Errorf("create_tar answer from %s without a result", host)
			}
			return *p.Result, nil
		case "error":
			status := p.Status
			if status == 0 {
				status = http.StatusInternalServerError
			}
			return CreateTarResponse{}, &APIError{StatusCode: status, Message: p.Error, Host: host}
		default:
			if progress != nil {
				progress(p)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return CreateTarResponse{}, fmt.Errorf("read create_tar progress from %s: %w", host, err)
	}
	return CreateTarResponse{}, fmt.Errorf("create_tar stream from %s ended without a result", host)
}

// TerminalURLs returns the WebSocket URLs of environment name's terminal
// on every replica, the one that answered last first. Dial them with the
// TokenHeader set to Token when the client has one.
func (c *Client) TerminalURLs(name string, rows, cols int) []string {
	start := int(c.next.Load())
	out := make([]string, 0, len(c.hosts))
	q := ""
	if rows > 0 && cols > 0 {
		q = "?rows=" + strconv.Itoa(rows) + "&cols=" + strconv.Itoa(cols)
	}
	for i := range c.hosts {
		h := c.hosts[(start+i)%len(c.hosts)]
		h = "ws" + strings.TrimPrefix(h, "http") // http→ws, https→wss
		out = append(out, h+"/api/docker/host/containers/"+url.PathEscape(name)+"/terminal"+q)
	}
	return out
}

// Token returns the cluster token the client sends ("" when none).
func (c *Client) Token() string { return c.cfg.Token }

// Bearer returns the account token the client sends ("" when none).
func (c *Client) Bearer() string { return c.cfg.Bearer }

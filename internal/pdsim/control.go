package pdsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
)

// controlRoutes registers the /_sim/ control API. It needs no credentials, is not rate
// limited, is never faulted and is not written to the request log.
//
//	GET    /_sim/healthz               {"status":"ok"}
//	GET    /_sim/requests?method=&path= {"requests":[Request…]} (path is a prefix)
//	DELETE /_sim/requests              empty the request log
//	GET    /_sim/faults                {"faults":[{"id","fault","matched","applied"}…]}
//	POST   /_sim/faults                body: a Fault; 201 {"id":n}
//	DELETE /_sim/faults                remove every fault
//	DELETE /_sim/faults/{id}           remove one fault
//	GET    /_sim/state                 accounts with their objects, and counters
//	POST   /_sim/seed                  body: a Seed; 201 {"accounts":[ids]}
func (s *Sim) controlRoutes() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("GET /_sim/healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	m.HandleFunc("GET /_sim/requests", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		writeJSON(w, http.StatusOK, map[string][]Request{"requests": s.reqlog.filter(q.Get("method"), q.Get("path"))})
	})
	m.HandleFunc("DELETE /_sim/requests", func(w http.ResponseWriter, _ *http.Request) {
		s.ResetRequests()
		w.WriteHeader(http.StatusNoContent)
	})
	m.HandleFunc("GET /_sim/faults", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string][]faultView{"faults": s.faults.snapshot()})
	})
	m.HandleFunc("POST /_sim/faults", s.handleInjectFault)
	m.HandleFunc("DELETE /_sim/faults", func(w http.ResponseWriter, _ *http.Request) {
		s.ClearFaults()
		w.WriteHeader(http.StatusNoContent)
	})
	m.HandleFunc("DELETE /_sim/faults/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.Atoi(r.PathValue("id"))
		if err != nil || !s.faults.remove(id) {
			writeControlError(w, http.StatusNotFound, "no such fault")
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	m.HandleFunc("GET /_sim/state", s.handleState)
	m.HandleFunc("POST /_sim/seed", s.handleSeed)
	m.HandleFunc("/_sim/", func(w http.ResponseWriter, _ *http.Request) {
		writeControlError(w, http.StatusNotFound, "unknown control route")
	})
	return m
}

func (s *Sim) handleInjectFault(w http.ResponseWriter, r *http.Request) {
	var f Fault
	if err := decodeStrict(w, r, &f); err != nil {
		writeControlError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := f.validate(); err != nil {
		writeControlError(w, http.StatusBadRequest, err.Error())
		return
	}
	writeJSON(w, http.StatusCreated, map[string]int{"id": s.faults.add(f)})
}

func (s *Sim) handleState(w http.ResponseWriter, _ *http.Request) {
	out := struct {
		Accounts    []accountState `json:"accounts"`
		RateLimited int            `json:"rate_limited"`
		Faults      []faultView    `json:"faults"`
	}{Accounts: []accountState{}, RateLimited: s.RateLimited(), Faults: s.faults.snapshot()}
	for _, a := range s.accountList() {
		out.Accounts = append(out.Accounts, a.state())
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Sim) handleSeed(w http.ResponseWriter, r *http.Request) {
	var seed Seed
	if err := decodeStrict(w, r, &seed); err != nil {
		writeControlError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := s.Load(seed); err != nil {
		writeControlError(w, http.StatusBadRequest, err.Error())
		return
	}
	ids := make([]string, 0, len(seed.Accounts))
	for _, a := range seed.Accounts {
		ids = append(ids, a.ID)
	}
	writeJSON(w, http.StatusCreated, map[string][]string{"accounts": ids})
}

// decodeStrict decodes a size-capped JSON body, refusing unknown fields.
func decodeStrict(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16*maxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decode body: %w", err)
	}
	return nil
}

func writeControlError(w http.ResponseWriter, status int, message string) {
	w.Header().Set("Content-Type", errorContentType)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]map[string]string{"error": {"message": message}})
}
